//! Running a container: from what the user asked for ([`LaunchOptions`])
//! and facts about the host ([`Host`]), a [`plan::LaunchPlan`] is built as
//! pure data (mounts, environment, command), then carried out by
//! [`launch::launch`] through `vessel-sys`.
//!
//! The process model: `vessel` (the monitor) makes the user and mount
//! namespaces, assembles the root file system in a private session tmpfs,
//! and forks the payload, which pivots into that root, sets
//! `no_new_privs` and execs. The monitor stays as the parent, relays
//! signals and exits with the payload's status.

pub mod bind;
pub mod doctor;
pub mod env;
pub mod env_native;
pub mod env_script;
pub mod extract;
pub mod fakeroot;
pub mod fuse;
pub mod fuse_helper;
pub mod fuse_ring;
pub mod gpu;
pub mod identity;
pub mod image_owners;
pub mod instance;
pub mod launch;
pub mod options;
pub mod overlay_layers;
pub mod plan;
pub mod resolve;
pub mod userns;

pub use launch::{launch, launch_image, LaunchError};
pub use options::{Action, Host, LaunchOptions};
