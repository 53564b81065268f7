//! Invoking worker Lambdas asynchronously (`InvocationType=Event`).

use crate::error::{InvokeError, InvokeFailure};
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use futures::future::BoxFuture;
use std::sync::Mutex;

/// Something that can start a Lambda function asynchronously with a JSON payload.
pub trait Invoker: Send + Sync + std::fmt::Debug {
    /// Invoke `function` (name or ARN) with `payload`, without waiting for it to finish.
    fn invoke_event<'a>(
        &'a self,
        function: &'a str,
        payload: String,
    ) -> BoxFuture<'a, Result<(), InvokeError>>;
}

/// The AWS Lambda Invoke API.
#[derive(Debug, Clone)]
pub struct LambdaInvoker(pub aws_sdk_lambda::Client);

impl Invoker for LambdaInvoker {
    fn invoke_event<'a>(
        &'a self,
        function: &'a str,
        payload: String,
    ) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move {
            let out = self
                .0
                .invoke()
                .function_name(function)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload))
                .send()
                .await
                .map_err(|e| InvokeError {
                    function: function.to_string(),
                    kind: classify(&e),
                    source: Box::new(crate::error::AwsError::from_sdk(e)),
                })?;
            // Real Lambda answers 202 to an Event invoke; local emulators may answer 200 when done.
            if let Some(err) = out.function_error() {
                return Err(InvokeError {
                    function: function.to_string(),
                    kind: InvokeFailure::Unknown,
                    source: format!("the function answered with the error `{err}`").into(),
                });
            }
            Ok(())
        })
    }
}

/// What an Invoke error means for the task: did the worker start? Only an answer with an HTTP
/// status says it did not; a lost connection or a timeout may have queued the event.
pub fn classify<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> InvokeFailure
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => InvokeFailure::NotSent,
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code();
            if code.is_none() && se.raw().body().bytes().is_some_and(is_function_error_document) {
                // The function ran and returned an error: an emulator that runs Event invocations
                // synchronously (cargo lambda watch) answers 500 with the function's own error.
                return InvokeFailure::Unknown;
            }
            match code {
                Some("TooManyRequestsException") => InvokeFailure::Throttled,
                Some("ResourceNotFoundException") => InvokeFailure::FunctionMissing,
                Some("RequestTooLargeException") => InvokeFailure::PayloadTooLarge,
                _ => match status {
                    429 => InvokeFailure::Throttled,
                    413 => InvokeFailure::PayloadTooLarge,
                    s if s >= 500 => InvokeFailure::ServerError,
                    s if s >= 400 => InvokeFailure::Refused,
                    _ => InvokeFailure::Unknown,
                },
            }
        }
        _ => InvokeFailure::Unknown,
    }
}

/// `true` for the error document a Lambda function's runtime reports (`errorMessage`, and no
/// service error `Type`/`__type`): the function was started. Lambda's own refusals never look
/// like this.
pub fn is_function_error_document(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok_and(|doc| {
        doc.contains_key("errorMessage") && !doc.contains_key("Type") && !doc.contains_key("__type")
    })
}

/// An invoker that records invocations instead of making them (tests, dry runs).
#[derive(Debug, Default)]
pub struct RecordingInvoker {
    calls: Mutex<Vec<(String, String)>>,
    fail_for: Mutex<Vec<(String, InvokeFailure)>>,
}

impl RecordingInvoker {
    /// Invocations so far: (function, payload).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().expect("not poisoned").clone()
    }
    /// Make invocations whose payload contains `needle` fail with an unknown outcome (as a
    /// timeout would: the worker may have started).
    pub fn fail_when_payload_contains(&self, needle: &str) {
        self.fail_with_when_payload_contains(needle, InvokeFailure::Unknown);
    }
    /// Make invocations whose payload contains `needle` fail as `kind`.
    pub fn fail_with_when_payload_contains(&self, needle: &str, kind: InvokeFailure) {
        self.fail_for
            .lock()
            .expect("not poisoned")
            .push((needle.to_string(), kind));
    }
}

impl Invoker for RecordingInvoker {
    fn invoke_event<'a>(
        &'a self,
        function: &'a str,
        payload: String,
    ) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move {
            let failure = self
                .fail_for
                .lock()
                .expect("not poisoned")
                .iter()
                .find(|(n, _)| payload.contains(n.as_str()))
                .map(|(_, kind)| *kind);
            if let Some(kind) = failure {
                return Err(InvokeError {
                    function: function.into(),
                    kind,
                    source: "injected failure".into(),
                });
            }
            self.calls
                .lock()
                .expect("not poisoned")
                .push((function.to_string(), payload));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_function_error_document;

    #[test]
    fn a_functions_own_error_document_means_it_started() {
        assert!(is_function_error_document(
            br#"{"errorType":"&alloc::boxed::Box<dyn core::error::Error>","errorMessage":"task t1: simulated failure"}"#
        ));
        for refusal in [
            &br#"{"Type":"User","message":"TooManyRequestsException"}"#[..],
            br#"{"Type":"Service","errorMessage":"x"}"#,
            br#"{"__type":"ServiceException","message":"x"}"#,
            b"<html>502 Bad Gateway</html>",
            b"",
        ] {
            assert!(
                !is_function_error_document(refusal),
                "{}",
                String::from_utf8_lossy(refusal)
            );
        }
    }
}
