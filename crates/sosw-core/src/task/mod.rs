//! Tasks: the stored model ([`model`]), the [`TaskManager`] ([`manager`]) standing on a
//! [`store::TaskStore`] (DynamoDB or in memory), pure payload encoding ([`payload`]), creating
//! tasks exactly once ([`create`]) and the size limits a task must fit in ([`size`]).

pub mod create;
pub mod manager;
pub mod model;
pub mod payload;
pub mod size;
pub mod store;

pub use create::CreateOnceOutcome;
pub use manager::{Claim, ClaimOutcome, Listing, Malformed, NewTask, SourceTable, TaskManager};
pub use model::{GreenfieldState, Item, Task, TaskId};
pub use store::{DynamoStore, MemoryStore, TaskStore};
