//! Tasks: the stored model ([`model`]) and the [`TaskManager`] over DynamoDB ([`manager`]).

pub mod create;
pub mod manager;
pub mod model;

pub use create::CreateOnceOutcome;
pub use manager::{Claim, ClaimOutcome, Listing, Malformed, NewTask, SourceTable, TaskManager};
pub use model::{GreenfieldState, Item, Task, TaskId};
