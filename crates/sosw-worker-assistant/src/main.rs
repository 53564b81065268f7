//! The Worker Assistant Lambda: the shared runtime (`sosw_lambda::serve`) over the library's
//! [`sosw_worker_assistant::WorkerAssistant`], which implements `sosw_lambda::Essential`.

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::serve::<sosw_worker_assistant::WorkerAssistant>().await
}
