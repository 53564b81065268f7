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

/// Retries sosw makes of its own, on top of the SDK's, for what the SDK does not retry: items a
/// BatchWriteItem/BatchGetItem left unprocessed, and transactions cancelled by a conflict with a
/// concurrent one. Seven retries (eight attempts) of 25 ms doubling up to 1.6 s, jittered: about
/// 3 s at most before the caller gets `FailureKind::Exhausted` (module `error`).
pub const SOSW_RETRIES: usize = 7;

/// The one bounded backoff of sosw's own retries (see [`SOSW_RETRIES`]): an iterator of delays
/// (crate `backon`) that ends when the retries are spent.
pub fn backoff() -> impl Iterator<Item = std::time::Duration> + Send {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(25))
        .with_max_delay(std::time::Duration::from_millis(1600))
        .with_factor(2.0)
        .with_max_times(SOSW_RETRIES)
        .with_jitter()
        .build()
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
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            s3: s3_client(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}

/// A DynamoDB client (each essential builds only the clients it uses: see [`s3_client`]).
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// A Lambda client.
pub fn lambda_client(sdk: &aws_config::SdkConfig) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(sdk)
}

/// A CloudWatch client.
pub fn cloudwatch_client(sdk: &aws_config::SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(sdk)
}

/// An SNS client.
pub fn sns_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(sdk)
}

/// The S3 client of the essentials: path-style addressing when an endpoint override points at a
/// local emulator. (Each essential builds only the clients it uses: a client costs start-up time.)
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_bounded_and_grows() {
        let delays: Vec<_> = backoff().collect();
        assert_eq!(delays.len(), SOSW_RETRIES);
        // Jitter adds up to one delay on top of each: 25 ms doubling, capped at 1.6 s.
        assert!(delays[0] >= std::time::Duration::from_millis(25), "{delays:?}");
        assert!(
            delays
                .iter()
                .all(|d| *d <= std::time::Duration::from_millis(3200)),
            "{delays:?}"
        );
        assert!(delays[6] >= std::time::Duration::from_millis(1600), "{delays:?}");
    }

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
