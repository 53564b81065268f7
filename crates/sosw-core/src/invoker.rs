//! Invoking worker Lambdas asynchronously (`InvocationType=Event`).

use crate::error::{render_error, InvokeError};
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
                    message: render_error(&e),
                })?;
            // Real Lambda answers 202 to an Event invoke; local emulators may answer 200 when done.
            if let Some(err) = out.function_error() {
                return Err(InvokeError {
                    function: function.to_string(),
                    message: format!("function error: {err}"),
                });
            }
            Ok(())
        })
    }
}

/// An invoker that records invocations instead of making them (tests, dry runs).
#[derive(Debug, Default)]
pub struct RecordingInvoker {
    calls: Mutex<Vec<(String, String)>>,
    fail_for: Mutex<Vec<String>>,
}

impl RecordingInvoker {
    /// Invocations so far: (function, payload).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().expect("not poisoned").clone()
    }
    /// Make invocations whose payload contains `needle` fail.
    pub fn fail_when_payload_contains(&self, needle: &str) {
        self.fail_for
            .lock()
            .expect("not poisoned")
            .push(needle.to_string());
    }
}

impl Invoker for RecordingInvoker {
    fn invoke_event<'a>(
        &'a self,
        function: &'a str,
        payload: String,
    ) -> BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move {
            if self
                .fail_for
                .lock()
                .expect("not poisoned")
                .iter()
                .any(|n| payload.contains(n))
            {
                return Err(InvokeError {
                    function: function.into(),
                    message: "injected failure".into(),
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
