//! Tasks: the stored model ([`model`]), the [`TaskManager`] over DynamoDB ([`manager`]) and the
//! size limits a task must fit in ([`size`]).

pub mod create;
pub mod manager;
pub mod model;
pub mod size;

pub use create::CreateOnceOutcome;
pub use manager::{Claim, ClaimOutcome, Listing, Malformed, NewTask, SourceTable, TaskManager};
pub use model::{GreenfieldState, Item, Task, TaskId};
