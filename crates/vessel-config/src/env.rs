use crate::Tool;

/// One variable Vessel reads, by key without its `APPTAINER_`/`SINGULARITY_`
/// prefix.
#[derive(Clone, Copy, Debug)]
pub struct EnvVar {
    pub key: &'static str,
    pub doc: &'static str,
}

impl EnvVar {
    pub const fn new(key: &'static str, doc: &'static str) -> Self {
        EnvVar { key, doc }
    }
}

/// One of Vessel's own variables (`VESSEL_*`), by its full name.
#[derive(Clone, Copy, Debug)]
pub struct OwnVar {
    pub name: &'static str,
    pub doc: &'static str,
}

impl OwnVar {
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        OwnVar { name, doc }
    }
}

/// A value found in the environment, and the variable it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvValue {
    pub name: String,
    pub value: String,
}

/// The outcome of looking a variable up: the value that applies, and a
/// note for the user when both prefixes were set or only the legacy one was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    pub value: Option<EnvValue>,
    pub warning: Option<String>,
    pub info: Option<String>,
}

/// Looks `var` up under both prefixes, in `tool`'s order, through `get`
/// (normally `std::env::var`), so tests need not touch the process
/// environment.
pub fn lookup(tool: Tool, var: EnvVar, get: impl Fn(&str) -> Option<String>) -> Lookup {
    let [first, second] = tool.env_prefixes().map(|p| format!("{p}{}", var.key));
    match (get(&first), get(&second)) {
        (Some(a), Some(b)) => Lookup {
            warning: (a != b)
                .then(|| format!("{first} and {second} have different values, using {first}")),
            value: Some(EnvValue {
                name: first,
                value: a,
            }),
            info: None,
        },
        (Some(a), None) => Lookup {
            value: Some(EnvValue {
                name: first,
                value: a,
            }),
            ..Lookup::default()
        },
        (None, Some(b)) => Lookup {
            info: Some(format!("{second} is set, but {first} is preferred")),
            value: Some(EnvValue {
                name: second,
                value: b,
            }),
            warning: None,
        },
        (None, None) => Lookup::default(),
    }
}

/// A boolean variable as Go's `strconv.ParseBool` reads it; anything else
/// (including an empty value) is `None`.
pub fn lookup_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const V: EnvVar = EnvVar::new("DEBUG", "");

    #[test]
    fn apptainer_prefix_wins() {
        let l = lookup(
            Tool::Apptainer,
            V,
            env(&[("APPTAINER_DEBUG", "1"), ("SINGULARITY_DEBUG", "0")]),
        );
        assert_eq!(l.value.unwrap().value, "1");
        assert!(l.warning.unwrap().contains("different values"));
    }

    #[test]
    fn legacy_prefix_alone_is_used_with_a_note() {
        let l = lookup(Tool::Vessel, V, env(&[("SINGULARITY_DEBUG", "true")]));
        assert_eq!(l.value.unwrap().name, "SINGULARITY_DEBUG");
        assert!(l.info.is_some());
    }

    #[test]
    fn singularity_persona_prefers_its_own_prefix() {
        let l = lookup(
            Tool::Singularity,
            V,
            env(&[("APPTAINER_DEBUG", "1"), ("SINGULARITY_DEBUG", "1")]),
        );
        assert_eq!(l.value.unwrap().name, "SINGULARITY_DEBUG");
        assert_eq!(l.warning, None);
    }

    #[test]
    fn go_booleans() {
        assert_eq!(lookup_bool("True"), Some(true));
        assert_eq!(lookup_bool("0"), Some(false));
        assert_eq!(lookup_bool("yes"), None);
    }
}
