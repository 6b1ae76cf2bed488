pub mod auth;
pub mod cache;
pub mod convert;
pub mod http;
pub mod layers;
pub mod local;
pub mod metadata;
pub mod oras;
pub mod registry;
pub mod source;

pub use cache::Cache;
pub use convert::{pull_to_sif, ProgressHook, PullError, PullOptions, Pulled};
pub use registry::Progress;
