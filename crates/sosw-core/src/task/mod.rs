//! Tasks: the stored model ([`model`]), the [`TaskManager`] over DynamoDB ([`manager`]) and the
//! size limits a task must fit in ([`size`]).

pub mod manager;
pub mod model;
pub mod size;

pub use manager::{ClaimOutcome, NewTask, TaskManager};
pub use model::{GreenfieldState, Item, Task, TaskId};
