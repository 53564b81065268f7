//! Panics fail the invocation, not the process: the shared `run` against a minimal Lambda Runtime
//! API on 127.0.0.1 that hands out two events and records what the runtime posts back.

use crate::common;

use serde_json::{json, Value};

#[tokio::test]
async fn a_panic_fails_its_invocation_and_the_next_one_is_answered() {
    let (_server, posted) = common::start(vec![json!({"panic": true}), json!({"panic": false})]);
    let runtime = tokio::spawn(sosw_lambda::run(
        |event: Value, invocation: sosw_lambda::Invocation| async move {
            if event["panic"] == json!(true) {
                panic!("handler panicked on {}", invocation.request_id);
            }
            Ok(json!({"answered": invocation.request_id, "deadline_ms": invocation.deadline_ms}))
        },
    ));
    let outcomes = common::outcomes(posted, 2).await;
    runtime.abort();
    let (first, second) = (&outcomes[0], &outcomes[1]);

    assert_eq!(first.path, "/2018-06-01/runtime/invocation/req-0/error");
    assert!(
        first.body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("handler panicked on req-0"),
        "{:?}",
        first.body
    );
    assert_eq!(second.path, "/2018-06-01/runtime/invocation/req-1/response");
    assert_eq!(
        second.body,
        json!({"answered": "req-1", "deadline_ms": 4102444800000u64})
    );
    assert!(!runtime.is_finished() || runtime.await.unwrap_err().is_cancelled());
}
