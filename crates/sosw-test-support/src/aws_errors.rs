//! Typed AWS failures ([`sosw_core::AwsError`]) for tests of the code that branches on them (the
//! essentials' Lambda error types, the CLI's hints), without a service to produce them.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use sosw_core::AwsError;

type Sdk = SdkError<ErrorMetadata, HttpResponse>;

/// AWS answered `status` with the error `code` and `message` (e.g. `ResourceNotFoundException`).
pub fn service(code: &str, message: &str, status: u16) -> AwsError {
    let meta = ErrorMetadata::builder().code(code).message(message).build();
    let status = StatusCode::try_from(status).expect("an HTTP status");
    AwsError::from_sdk(Sdk::service_error(
        meta,
        HttpResponse::new(status, SdkBody::empty()),
    ))
}

/// The call got no answer in time.
pub fn unreachable() -> AwsError {
    AwsError::from_sdk(Sdk::timeout_error("no answer from 127.0.0.1"))
}
