//! The Orchestrator Lambda (EventBridge, every minute): the shared runtime (`sosw_lambda::serve`) over the library's
//! [`sosw_orchestrator::Orchestrator`], which implements `sosw_lambda::Essential`.

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::serve::<sosw_orchestrator::Orchestrator>().await
}
