//! AWS failures keep the SDK error as their source, name the resource that failed, and say what
//! they were (not found, access denied, throttled, no credentials, unreachable) from the SDK
//! error's code, status and kind, not its text. Canned answers (`aws-smithy-mocks`) stand in for
//! the services; the unreachable and credential cases use a real client against a closed port.

use aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsError;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationError;
use aws_smithy_mocks::{mock, mock_client, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use serde_json::json;
use sosw_core::config::EcologyConfig;
use sosw_core::config_source::ConfigSource;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::{
    AwsError, AwsFailure, ConfigError, EcologyError, EcologyManager, ManualClock, TaskConfig, TaskManager,
};
use std::sync::Arc;

/// A client of `$sdk` answering from `rules`, with no retries (the SDK would retry throttling).
/// `mock_client!` needs the SDK crate's `test-util` feature; this builds the same client without.
macro_rules! mocked {
    ($sdk:ident, $rules:expr) => {{
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::from_static("us-east-1"))
                .credentials_provider($sdk::config::Credentials::new(
                    "AKID", "SECRET", None, None, "test",
                ))
                .retry_config($sdk::config::retry::RetryConfig::disabled())
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

fn http(status: u16) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
}

/// An error answer as the service sends it, so the SDK parses the code as in production.
fn answer(status: u16, error_type: Option<&str>, body: &str) -> HttpResponse {
    let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
    if let Some(t) = error_type {
        response.headers_mut().insert("x-amzn-errortype", t.to_string());
    }
    response
}

/// The first error of type `T` in `err`'s source chain.
fn in_chain<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        next = e.source();
    }
    None
}

fn labourer_config(labourer: serde_json::Value) -> TaskConfig {
    TaskConfig::from_user(&json!({"labourers": {"worker": labourer}})).unwrap()
}

/// `max_duration` of labourer `worker` (function `arn`) with Lambda answering from `rule`: its error.
async fn max_duration_error(arn: &str, rule: &Rule) -> EcologyError {
    let tm = TaskManager::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, &[] as &[&Rule]),
        mocked!(aws_sdk_lambda, [rule]),
        labourer_config(json!({"arn": arn})),
        Arc::new(ManualClock::at(0.0)),
    );
    let labourer = tm.register_labourer("worker").unwrap();
    tm.max_duration(&labourer).await.unwrap_err()
}

#[tokio::test]
async fn a_missing_function_names_labourer_and_function_and_keeps_the_lambda_error() {
    let rule = mock!(aws_sdk_lambda::Client::get_function_configuration).then_http_response(|| {
        answer(
            404,
            Some("ResourceNotFoundException"),
            r#"{"Type":"User","Message":"Function not found: arn:fn"}"#,
        )
    });
    let err = max_duration_error("arn:aws:lambda:us-east-1:1:function:w", &rule).await;
    let EcologyError::FunctionConfiguration {
        labourer,
        function,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(labourer, "worker");
    assert_eq!(function, "arn:aws:lambda:us-east-1:1:function:w");
    assert!(source.is_not_found(), "{source:?}");
    assert_eq!(source.code(), Some("ResourceNotFoundException"));
    let sdk = in_chain::<SdkError<GetFunctionConfigurationError, HttpResponse>>(&err)
        .expect("the SDK error is in the source chain");
    assert!(sdk
        .as_service_error()
        .is_some_and(|e| e.is_resource_not_found_exception()));
    let text = err.to_string();
    assert!(
        text.contains("worker") && text.contains("Function not found"),
        "{text}"
    );
}

#[tokio::test]
async fn a_labourer_without_max_duration_and_without_a_lambda_client_says_so() {
    let tm = TaskManager::with_store(
        Arc::new(sosw_core::MemoryStore::new()),
        labourer_config(json!({})),
        Arc::new(ManualClock::at(0.0)),
    );
    let labourer = tm.register_labourer("worker").unwrap();
    let err = tm.max_duration(&labourer).await.unwrap_err();
    assert!(
        matches!(&err, EcologyError::NoMaxDuration { labourer } if labourer == "worker"),
        "{err:?}"
    );
    assert!(err.to_string().contains("set `max_duration`"), "{err}");
}

#[tokio::test]
async fn a_throttled_lambda_call_is_throttling_by_its_code() {
    let rule = mock!(aws_sdk_lambda::Client::get_function_configuration).then_http_response(|| {
        answer(
            429,
            Some("TooManyRequestsException"),
            r#"{"Type":"User","message":"Rate exceeded"}"#,
        )
    });
    let EcologyError::FunctionConfiguration { source, .. } = max_duration_error("w", &rule).await else {
        panic!("not a FunctionConfiguration error")
    };
    assert!(source.is_throttling(), "{source:?}");
    assert!(!source.is_not_found() && !source.is_access_denied());
}

#[tokio::test]
async fn a_refused_metric_names_metric_namespace_and_labourer_and_is_access_denied() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_statistics).then_error(|| {
        GetMetricStatisticsError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform: cloudwatch:GetMetricStatistics")
                .build(),
        )
    });
    let eco = EcologyManager::new(
        Arc::new(CloudWatchMetrics(mocked!(aws_sdk_cloudwatch, [&rule]))),
        EcologyConfig::default(),
        Arc::new(ManualClock::at(1_750_000_000.0)),
    );
    let config = labourer_config(json!({"health_metrics": {"errors": {
        "details": {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
        "feelings": {"3": 50, "4": 25}, "feeling_comparison_operator": "<="}}}));
    let labourer = sosw_core::Labourer::register("worker", &config.labourers["worker"], &config, 0);
    let err = eco.labourer_health(&labourer).await.unwrap_err();
    let EcologyError::LabourerHealth {
        labourer,
        metric,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((labourer.as_str(), metric.as_str()), ("worker", "errors"));
    let EcologyError::CloudWatch {
        metric,
        namespace,
        source,
    } = source.as_ref()
    else {
        panic!("{source:?}")
    };
    assert_eq!((metric.as_str(), namespace.as_str()), ("Errors", "AWS/Lambda"));
    assert!(source.is_access_denied(), "{source:?}");
    assert!(in_chain::<SdkError<GetMetricStatisticsError, HttpResponse>>(&err).is_some());
    let aws = in_chain::<AwsError>(&err).expect("the AwsError is in the chain");
    assert_eq!(aws.kind(), AwsFailure::AccessDenied);
}

#[tokio::test]
async fn a_missing_config_table_is_not_found_and_names_the_document_and_table() {
    let rule = mock!(aws_sdk_dynamodb::Client::query).then_http_response(|| {
        answer(
            400,
            None,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        )
    });
    let source = ConfigSource::Dynamo {
        client: mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]),
        table: "config".into(),
        env: "production".into(),
    };
    // `check_readable` is the operator's path: a missing table is an error there.
    let err = source.check_readable().await.unwrap_err();
    let ConfigError::Source {
        source_kind, source, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(source_kind.contains("config"), "{source_kind}");
    assert!(source.is_not_found(), "{source:?}");
    assert!(in_chain::<SdkError<QueryError, HttpResponse>>(&err).is_some());
}

#[test]
fn codes_and_statuses_decide_the_kind() {
    type E = SdkError<ErrorMetadata, HttpResponse>;
    let service = |code: Option<&str>, status: u16| {
        let mut meta = ErrorMetadata::builder();
        if let Some(c) = code {
            meta = meta.code(c);
        }
        AwsError::from_sdk(E::service_error(meta.build(), http(status))).kind()
    };
    assert_eq!(
        service(Some("ResourceNotFoundException"), 400),
        AwsFailure::NotFound
    );
    assert_eq!(service(Some("ResourceNotFound"), 400), AwsFailure::NotFound);
    assert_eq!(
        service(Some("AccessDeniedException"), 400),
        AwsFailure::AccessDenied
    );
    assert_eq!(service(None, 403), AwsFailure::AccessDenied);
    assert_eq!(
        service(Some("UnrecognizedClientException"), 400),
        AwsFailure::Credentials
    );
    assert_eq!(
        service(Some("ExpiredTokenException"), 400),
        AwsFailure::Credentials
    );
    assert_eq!(
        service(Some("ProvisionedThroughputExceededException"), 400),
        AwsFailure::Throttling
    );
    assert_eq!(service(None, 429), AwsFailure::Throttling);
    assert_eq!(service(Some("ValidationException"), 400), AwsFailure::Other);
    assert_eq!(service(None, 500), AwsFailure::Other);
    assert_eq!(
        AwsError::from_sdk(E::timeout_error("slow")).kind(),
        AwsFailure::Unreachable
    );
    assert_eq!(
        AwsError::from_sdk(E::construction_failure("bad")).kind(),
        AwsFailure::Other
    );
}

/// A DynamoDB client against a closed loopback port with the given credentials provider.
fn closed_port_client(
    creds: aws_sdk_dynamodb::config::SharedCredentialsProvider,
) -> aws_sdk_dynamodb::Client {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::from_static("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(creds)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
}

#[tokio::test]
async fn a_closed_endpoint_is_unreachable_and_missing_credentials_are_credentials() {
    use aws_credential_types::provider::error::CredentialsError;
    let ok = aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
        aws_sdk_dynamodb::config::Credentials::new("AKID", "SECRET", None, None, "test"),
    );
    let e = closed_port_client(ok)
        .describe_table()
        .table_name("t")
        .send()
        .await
        .unwrap_err();
    let e = AwsError::from_sdk(e);
    assert!(e.is_unreachable(), "{e:?}");
    let none = aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
        aws_credential_types::credential_fn::provide_credentials_fn(|| async {
            Err(CredentialsError::not_loaded("no credentials in the environment"))
        }),
    );
    let e = closed_port_client(none)
        .describe_table()
        .table_name("t")
        .send()
        .await
        .unwrap_err();
    let e = AwsError::from_sdk(e);
    assert!(e.is_credentials(), "{e:?}");
    assert!(in_chain::<CredentialsError>(&e).is_some(), "{e:?}");
}

#[tokio::test]
async fn a_refused_invoke_keeps_the_lambda_error_and_says_the_worker_did_not_start() {
    use aws_sdk_lambda::operation::invoke::InvokeError as SdkInvokeError;
    use sosw_core::invoker::{Invoker, LambdaInvoker};
    use sosw_core::{InvokeError, InvokeFailure};
    let rule = mock!(aws_sdk_lambda::Client::invoke).then_http_response(|| {
        answer(
            429,
            Some("TooManyRequestsException"),
            r#"{"Type":"User","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","message":"Rate Exceeded."}"#,
        )
    });
    let invoker = LambdaInvoker(mocked!(aws_sdk_lambda, [&rule]));
    let err: InvokeError = invoker
        .invoke_event("arn:aws:lambda:us-east-1:1:function:w", "{}".into())
        .await
        .unwrap_err();
    assert_eq!(err.function, "arn:aws:lambda:us-east-1:1:function:w");
    assert_eq!(err.kind, InvokeFailure::Throttled);
    assert!(err.kind.worker_not_started());
    let aws = in_chain::<AwsError>(&err).expect("the AwsError is the source");
    assert!(aws.is_throttling(), "{aws:?}");
    assert_eq!(aws.code(), Some("TooManyRequestsException"));
    let sdk =
        in_chain::<SdkError<SdkInvokeError, HttpResponse>>(&err).expect("the SDK error is in the chain");
    assert!(sdk
        .as_service_error()
        .is_some_and(|e| e.is_too_many_requests_exception()));
    let text = sosw_core::error::render_error(&err);
    assert!(
        text.contains("function:w") && text.contains("Rate Exceeded"),
        "{text}"
    );
}
