//! `inspect`: the labels, scripts, environment and definition file of an
//! image, gathered and printed as Apptainer does.
//!
//! Images built by Apptainer carry all of it in one JSON object
//! (`inspect-metadata.json`); older images and sandboxes are read from their
//! `/.singularity.d` files. Either way the result is the same [`Metadata`],
//! printed as text or as Go-style JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;
use vessel_sif::{DataType, FsType};

use crate::open::Image;
use crate::rootfs::RootDir;
use crate::squashfs::unpack_metadata;

/// The name of the SIF object holding an image's inspect metadata.
pub const METADATA_OBJECT: &str = "inspect-metadata.json";
/// Metadata files and objects larger than this are refused: they are text
/// written by a build, and a larger one is damage or an attack.
const METADATA_LIMIT: u64 = 64 << 20;

#[derive(Debug, Error)]
pub enum InspectError {
    #[error(transparent)]
    Sif(#[from] vessel_sif::Error),
    #[error("while reading the container's files: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Image(String),
}

/// What to show, as the `inspect` flags say.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub labels: bool,
    pub deffile: bool,
    pub runscript: bool,
    pub startscript: bool,
    pub test: bool,
    pub environment: bool,
    pub helpfile: bool,
    pub list_apps: bool,
    pub app: Option<String>,
    pub all: bool,
    pub json: bool,
}

impl Request {
    /// Applies the implied flags: `--all` selects everything as JSON for the
    /// whole image, and labels are shown when nothing else was asked for.
    pub fn normalized(mut self) -> Self {
        if self.all {
            self = Request {
                labels: true,
                deffile: true,
                runscript: true,
                startscript: true,
                test: true,
                environment: true,
                helpfile: true,
                list_apps: true,
                app: None,
                all: true,
                json: true,
            };
        }
        if !(self.helpfile
            || self.deffile
            || self.runscript
            || self.startscript
            || self.test
            || self.environment
            || self.list_apps)
        {
            self.labels = true;
        }
        self.app = self.app.filter(|a| !a.is_empty());
        self
    }
}

/// The inspect metadata document, as Apptainer stores and prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub data: Data,
    #[serde(rename = "type", default = "container")]
    pub kind: String,
}

fn container() -> String {
    "container".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Data {
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub apps: BTreeMap<String, AppAttributes>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub runscript: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub test: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub helpfile: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub deffile: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub startscript: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppAttributes {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub runscript: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub startscript: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub test: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub helpfile: String,
}

/// Go decodes `null` into a field as its zero value.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Metadata {
    fn with(attributes: Attributes) -> Self {
        Metadata {
            data: Data { attributes },
            kind: container(),
        }
    }

    pub fn attributes(&self) -> &Attributes {
        &self.data.attributes
    }
}

/// Gathers what `req` asks for from `image`.
pub fn inspect(image: &mut Image, req: &Request) -> Result<Metadata, InspectError> {
    let mut attrs = match image {
        Image::Sif { path, sif } => {
            let deffile_id = sif
                .descriptors()
                .find(|d| d.data_type == DataType::DEFFILE)
                .map(|d| d.id);
            let metadata_id = sif
                .descriptors()
                .find(|d| {
                    d.partition().is_none()
                        && d.data_type.0 != 0
                        && d.name() == METADATA_OBJECT.as_bytes()
                })
                .map(|d| d.id);
            let stored = match metadata_id {
                Some(id) => decode_stored(&sif.read_object(id, METADATA_LIMIT)?),
                None => None,
            };
            if let Some(stored) = stored {
                tracing::trace!("Using {METADATA_OBJECT} SIF descriptor");
                from_stored(stored.data.attributes, req, deffile_id.is_some())
            } else {
                let part = sif.primary_partition().copied().ok_or_else(|| {
                    InspectError::Image(format!(
                        "{} has no primary system partition to read metadata from",
                        path.display()
                    ))
                })?;
                let fs = part.partition().map(|p| p.fs);
                if fs != Some(FsType::SQUASHFS) {
                    return Err(InspectError::Image(format!(
                        "reading metadata from a {} partition is not supported yet",
                        fs.map_or("unknown".into(), |f| f.to_string())
                    )));
                }
                let raw_deffile = match deffile_id {
                    Some(id) => Some(sif.read_object(id, METADATA_LIMIT)?),
                    None => None,
                };
                tracing::trace!(
                    "No {METADATA_OBJECT} SIF descriptor found, reading the root file system"
                );
                let unpacked =
                    unpack_metadata(path, part.offset as u64).map_err(InspectError::Image)?;
                let root = RootDir::new(unpacked.path().join("root"));
                from_rootfs(&root, req, raw_deffile)?
            }
        }
        Image::Squashfs { path, offset, .. } => {
            let unpacked = unpack_metadata(path, *offset).map_err(InspectError::Image)?;
            from_rootfs(&RootDir::new(unpacked.path().join("root")), req, None)?
        }
        Image::Sandbox { path } => from_rootfs(&RootDir::new(path.as_path()), req, None)?,
    };
    if !req.list_apps && !req.all {
        attrs
            .apps
            .retain(|name, _| req.app.as_deref() == Some(name.as_str()));
    }
    Ok(Metadata::with(attrs))
}

/// The stored metadata, or `None` (with a warning) when it cannot be
/// decoded, in which case the image's files are read instead. Like Go's
/// decoder, anything after the first JSON value is ignored.
fn decode_stored(bytes: &[u8]) -> Option<Metadata> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Metadata>();
    match values.next() {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            tracing::warn!(
                "Unable to read {METADATA_OBJECT} SIF descriptor: while decoding inspect metadata: {e}"
            );
            None
        }
        None => {
            tracing::warn!(
                "Unable to read {METADATA_OBJECT} SIF descriptor: while decoding inspect metadata: empty object"
            );
            None
        }
    }
}

/// Copies the requested fields out of stored metadata.
fn from_stored(src: Attributes, req: &Request, has_deffile_object: bool) -> Attributes {
    let mut out = Attributes::default();
    if req.list_apps || req.all {
        out.apps = src.apps.clone();
    }
    match &req.app {
        Some(name) => {
            if let Some(app) = src.apps.get(name) {
                let dst = out.apps.entry(name.clone()).or_default();
                if req.labels {
                    dst.labels = app.labels.clone();
                }
                if req.runscript {
                    dst.runscript = app.runscript.clone();
                }
                if req.startscript {
                    dst.startscript = app.startscript.clone();
                }
                if req.test {
                    dst.test = app.test.clone();
                }
                if req.helpfile {
                    dst.helpfile = app.helpfile.clone();
                }
                if req.environment {
                    dst.environment = app.environment.clone();
                }
            }
        }
        None => {
            if req.labels {
                out.labels = src.labels;
            }
            if req.runscript {
                out.runscript = src.runscript;
            }
            if req.startscript {
                out.startscript = src.startscript;
            }
            if req.test {
                out.test = src.test;
            }
            if req.helpfile {
                out.helpfile = src.helpfile;
            }
            if req.environment {
                out.environment = src.environment;
            }
        }
    }
    if req.deffile {
        if has_deffile_object {
            out.deffile = src.deffile;
        } else {
            tracing::warn!("No SIF metadata partition, searching in container...");
        }
    }
    out
}

/// Reads the requested fields from the files of a root file system.
fn from_rootfs(
    root: &RootDir,
    req: &Request,
    raw_deffile: Option<Vec<u8>>,
) -> Result<Attributes, InspectError> {
    let mut out = Attributes::default();
    let mut all_apps = Vec::new();
    for name in root.list_dir("/scif/apps")? {
        if root.is_dir(&format!("/scif/apps/{name}/scif"))? {
            out.apps.insert(name.clone(), AppAttributes::default());
            all_apps.push(name);
        }
    }
    let mut sources: Vec<(String, Option<String>)> = match &req.app {
        Some(app) => vec![(format!("/scif/apps/{app}/scif"), Some(app.clone()))],
        None => vec![("/.singularity.d".into(), None)],
    };
    if req.all {
        sources.extend(
            all_apps
                .iter()
                .map(|a| (format!("/scif/apps/{a}/scif"), Some(a.clone()))),
        );
    }

    let read = |path: &str| -> Result<Option<String>, InspectError> {
        Ok(root.read_file(path, METADATA_LIMIT)?.map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\n')
                .to_string()
        }))
    };

    if req.deffile {
        out.deffile = match raw_deffile {
            Some(raw) => String::from_utf8_lossy(&raw).into_owned(),
            None => {
                let mut found = String::new();
                for (dir, _) in &sources {
                    if let Some(text) = read(&format!("{dir}/Singularity"))? {
                        found = text;
                        break;
                    }
                }
                found
            }
        };
    }

    for (dir, app) in &sources {
        let mut fields = AppAttributes::default();
        if req.labels {
            if let Some(text) = read(&format!("{dir}/labels.json"))? {
                fields.labels = parse_labels(&text);
            }
        }
        let scripts = [
            (req.runscript, "runscript", &mut fields.runscript),
            (req.startscript, "startscript", &mut fields.startscript),
            (req.test, "test", &mut fields.test),
            (req.helpfile, "runscript.help", &mut fields.helpfile),
        ];
        for (wanted, file, slot) in scripts {
            if wanted {
                if let Some(text) = read(&format!("{dir}/{file}"))? {
                    *slot = text;
                }
            }
        }
        if req.environment {
            let names = root.list_dir(&format!("{dir}/env"))?;
            let docker = names
                .iter()
                .filter(|n| dir.ends_with("/.singularity.d") && glob_match(n, "10-docker", ".sh"));
            let custom = names
                .iter()
                .filter(|n| glob_match(n, "9", "-environment.sh"));
            for name in docker.chain(custom) {
                let path = format!("{dir}/env/{name}");
                if let Some(text) = read(&path)? {
                    fields.environment.insert(path, text);
                }
            }
        }
        match app {
            Some(name) => merge_app(out.apps.entry(name.clone()).or_default(), fields),
            None => {
                out.labels = fields.labels;
                out.runscript = fields.runscript;
                out.startscript = fields.startscript;
                out.test = fields.test;
                out.helpfile = fields.helpfile;
                out.environment = fields.environment;
            }
        }
    }
    Ok(out)
}

fn merge_app(dst: &mut AppAttributes, src: AppAttributes) {
    dst.labels.extend(src.labels);
    dst.environment.extend(src.environment);
    for (d, s) in [
        (&mut dst.runscript, src.runscript),
        (&mut dst.startscript, src.startscript),
        (&mut dst.test, src.test),
        (&mut dst.helpfile, src.helpfile),
    ] {
        if !s.is_empty() {
            *d = s;
        }
    }
}

/// `prefix*suffix` as a shell glob over one name.
fn glob_match(name: &str, prefix: &str, suffix: &str) -> bool {
    name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

/// `labels.json` as a string map. A value that is not a string is kept as
/// an empty string and reported, as Apptainer's decoder does.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let map = match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(map) => map,
        Err(e) => {
            tracing::warn!("Unable to parse labels: {e}");
            return BTreeMap::new();
        }
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => {
                tracing::warn!("Unable to parse labels: label {k} is {other}, not a string");
                (k, String::new())
            }
        })
        .collect()
}

/// The text report: sections in Apptainer's fixed order, whatever order
/// the flags came in, each value followed by one newline.
pub fn render_text(meta: &Metadata, req: &Request) -> String {
    let a = meta.attributes();
    let app = req.app.as_ref().and_then(|n| a.apps.get(n));
    let mut out = String::new();
    if req.list_apps {
        for name in a.apps.keys() {
            let _ = writeln!(out, "{name}");
        }
    }
    if !a.deffile.is_empty() {
        let _ = writeln!(out, "{}", a.deffile);
    }
    let pick = |top: &str, app_value: Option<&String>| -> Option<String> {
        if !top.is_empty() {
            Some(top.to_string())
        } else {
            app_value.filter(|v| !v.is_empty()).cloned()
        }
    };
    for value in [
        pick(&a.runscript, app.map(|x| &x.runscript)),
        pick(&a.startscript, app.map(|x| &x.startscript)),
        pick(&a.test, app.map(|x| &x.test)),
        pick(&a.helpfile, app.map(|x| &x.helpfile)),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "{value}");
    }
    let environment = if !a.environment.is_empty() {
        Some(&a.environment)
    } else {
        app.map(|x| &x.environment)
    };
    for (k, v) in environment.into_iter().flatten() {
        let _ = write!(out, "=== {k} ===\n{v}\n\n");
    }
    let labels = if !a.labels.is_empty() {
        Some(&a.labels)
    } else {
        app.map(|x| &x.labels)
    };
    for (k, v) in labels.into_iter().flatten() {
        let _ = writeln!(out, "{k}: {v}");
    }
    out
}

/// The JSON report, formatted as Go's `json.MarshalIndent(v, "", "\t")`:
/// tab indentation, and `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn render_json(meta: &Metadata) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    meta.serialize(&mut ser)
        .expect("serializing plain maps and strings cannot fail");
    let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    // These characters can only appear inside strings, so escaping them in
    // the whole text escapes exactly what Go escapes.
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_default() {
        let r = Request::default().normalized();
        assert!(r.labels);
        let r = Request {
            runscript: true,
            ..Request::default()
        }
        .normalized();
        assert!(!r.labels);
        let r = Request {
            all: true,
            app: Some("x".into()),
            ..Request::default()
        }
        .normalized();
        assert!(r.json && r.deffile && r.app.is_none());
    }

    #[test]
    fn empty_json_matches_go() {
        assert_eq!(
            render_json(&Metadata::with(Attributes::default())),
            "{\n\t\"data\": {\n\t\t\"attributes\": {}\n\t},\n\t\"type\": \"container\"\n}\n"
        );
    }

    #[test]
    fn json_escapes_html_like_go() {
        let a = Attributes {
            runscript: "a && b > c < d\u{2028}".into(),
            ..Attributes::default()
        };
        let json = render_json(&Metadata::with(a));
        assert!(json.contains(r#""runscript": "a \u0026\u0026 b \u003e c \u003c d\u2028""#));
    }

    #[test]
    fn labels_with_other_types_keep_their_key() {
        let labels = parse_labels(r#"{"a": "x", "b": 3}"#);
        assert_eq!(labels["a"], "x");
        assert_eq!(labels["b"], "");
        assert!(parse_labels("").is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("10-docker2singularity.sh", "10-docker", ".sh"));
        assert!(glob_match("90-environment.sh", "9", "-environment.sh"));
        assert!(!glob_match("99-base.sh", "9", "-environment.sh"));
        assert!(!glob_match("9-environment.sh", "9", "9-environment.sh"));
    }
}
