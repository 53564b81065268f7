//! AWS clients, built once in one place from the standard environment (region, credentials,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides).

/// Attempts per AWS call (the first try included) under the SDK's standard retry mode, for every
/// client built from [`load_sdk_config`]. Three is the SDK's own default, written here so the choice
/// is one place: throttling and transient 5xx get two retries with jittered exponential backoff,
/// which together stay well inside an essential's Lambda timeout. sosw's own loops (unprocessed
/// batch items, transaction conflicts) come on top and handle what the SDK does not retry.
pub const MAX_ATTEMPTS: u32 = 3;

/// The retry policy every sosw client uses: standard mode, [`MAX_ATTEMPTS`] attempts.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// Load the shared SDK configuration from the environment, with sosw's [`retry_config`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_loaded_config_carries_sosws_retry_policy() {
        let sdk = load_sdk_config().await;
        let retry = sdk.retry_config().expect("a retry config is set");
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
        // The clients built from it keep it.
        let clients = Clients::new(&sdk);
        let dynamodb = clients
            .dynamodb
            .config()
            .retry_config()
            .expect("dynamodb retry config");
        assert_eq!(dynamodb.max_attempts(), MAX_ATTEMPTS);
    }
}
