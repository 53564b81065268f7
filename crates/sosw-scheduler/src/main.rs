//! The Scheduler Lambda: the shared runtime (`sosw_lambda::serve`) over the library's
//! [`sosw_scheduler::Scheduler`], which implements `sosw_lambda::Essential`.

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::serve::<sosw_scheduler::Scheduler>().await
}
