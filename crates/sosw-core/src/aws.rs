//! AWS clients, built once in one place from the standard environment (region, credentials,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides).

/// Load the shared SDK configuration from the environment.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The clients the essentials use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// CloudWatch (metrics for the ecology).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// S3 (scheduler queue files).
    pub s3: aws_sdk_s3::Client,
    /// SNS (dead task alerts).
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Build every client from one SDK config.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        // Path-style S3 addressing when an endpoint override points at a local emulator.
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(
                sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some(),
            )
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}
