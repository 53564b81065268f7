//! The Scavenger Lambda (EventBridge, every minute): the shared runtime (`sosw_lambda::serve`) over the library's
//! [`sosw_scavenger::Scavenger`], which implements `sosw_lambda::Essential`.

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::serve::<sosw_scavenger::Scavenger>().await
}
