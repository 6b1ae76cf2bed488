//! Apptainer definition files (`*.def`): parsing, build-argument templating
//! and canonical rendering.
//!
//! The rules follow Apptainer's parser (`pkg/build/types/parser/deffile.go`)
//! and its build-argument reader (`internal/pkg/build/args/`); places where
//! Vessel is deliberately stricter or more lenient are documented on the
//! functions concerned.
//!
//! Typical use:
//!
//! ```
//! use std::collections::BTreeMap;
//! let text = "Bootstrap: docker\nFrom: alpine:{{ VER }}\n\n%arguments\n    VER=3.19\n\n%post -c /bin/bash\n    echo hi\n";
//! let (templated, warnings) = vessel_build::apply_build_args(text, &BTreeMap::new(), false).unwrap();
//! assert!(warnings.is_empty());
//! let def = vessel_build::parse("demo.def", &templated).unwrap();
//! assert_eq!(def.stages[0].get("from"), Some("alpine:3.19"));
//! assert_eq!(def.stages[0].sections.post.interpreter.as_deref(), Some("/bin/bash"));
//! ```
mod apps;
pub mod buildargs;
mod debootstrap;
pub mod def;
pub mod engine;
mod error;
mod gpu_points;
mod hostroot;
mod in_root;
mod pack;

pub use buildargs::{
    apply_build_args, apply_build_args_in, collect_build_args, parse_build_arg,
    parse_build_arg_file,
};
pub use def::*;
pub use error::{DefError, ErrorKind};
