//! `serve` builds an essential once and hands every event its invocation's context; the handler's
//! typed error reaches Lambda as its `errorType`.

use crate::common;

use serde_json::{json, Value};
use sosw_core::Clock;
use sosw_lambda::{EdgeError, ErrorKind, Essential, Invocation};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// An essential that answers with what it was told about the invocation, and rejects
/// `{"reject": true}` as a job.
struct Echo {
    function_name: String,
    clock: Arc<dyn Clock>,
}

impl Essential for Echo {
    const DEFAULT_NAME: &'static str = "echo";

    async fn build(
        _sdk: &aws_config::SdkConfig,
        function_name: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, sosw_lambda::BoxError> {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        Ok(Self {
            function_name: function_name.to_string(),
            clock,
        })
    }

    async fn handle_event(&self, event: Value, invocation: &Invocation) -> Result<Value, EdgeError> {
        if event["reject"] == json!(true) {
            return Err(EdgeError::new(
                ErrorKind::RejectedJob,
                format!("job of {} rejected", invocation.request_id),
            ));
        }
        let meta = invocation.meta_context();
        Ok(json!({
            "built_for": self.function_name,
            "request_id": invocation.request_id,
            "deadline_ms": invocation.deadline_ms,
            "remaining_positive": invocation.remaining(&*self.clock).as_millis() > 0,
            "meta": [meta.author, meta.invocation_id, meta.log_stream_name],
        }))
    }
}

#[tokio::test]
async fn serve_builds_once_and_passes_each_invocations_context_and_typed_errors() {
    let (_server, posted) = common::start(vec![json!({}), json!({"reject": true}), json!({})]);
    let runtime = tokio::spawn(sosw_lambda::serve::<Echo>());
    let outcomes = common::outcomes(posted, 3).await;
    runtime.abort();

    assert_eq!(outcomes[0].path, "/2018-06-01/runtime/invocation/req-0/response");
    assert_eq!(
        outcomes[0].body,
        json!({"built_for": "test", "request_id": "req-0", "deadline_ms": 4102444800000u64,
               "remaining_positive": true,
               "meta": ["test", "req-0", "2026/01/01/[$LATEST]stream"]})
    );
    assert_eq!(outcomes[1].path, "/2018-06-01/runtime/invocation/req-1/error");
    assert_eq!(outcomes[1].body["errorType"], "RejectedJob");
    assert_eq!(outcomes[1].body["errorMessage"], "job of req-1 rejected");
    assert_eq!(outcomes[2].body["request_id"], "req-2");
    assert_eq!(
        BUILDS.load(Ordering::SeqCst),
        1,
        "the essential is built once per process"
    );
}
