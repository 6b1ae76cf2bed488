//! Finding the objects and signatures a sign or verify task works on, with
//! the reference's rules (table order, groups, links).

use vessel_sif::{DataType, Descriptor, Link, Sif};

use crate::error::{Error, Result};

/// Group IDs in use by any object, sorted.
pub fn group_ids<F>(sif: &Sif<F>) -> Vec<u32> {
    let mut ids: Vec<u32> = sif.descriptors().filter_map(|d| d.group()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Every object in a group (signatures included, as the reference does), in
/// table order. An empty group is an error.
pub fn group_objects<F>(sif: &Sif<F>, group: u32) -> Result<Vec<Descriptor>> {
    let ods: Vec<Descriptor> = sif
        .descriptors()
        .filter(|d| d.group() == Some(group))
        .copied()
        .collect();
    if ods.is_empty() {
        return Err(Error::GroupNotFound(group));
    }
    Ok(ods)
}

/// The smallest object ID in a group: signed metadata stores IDs relative
/// to it, so that a group keeps its signature when copied to another image.
pub fn group_min_id<F>(sif: &Sif<F>, group: u32) -> Result<u32> {
    sif.descriptors()
        .filter(|d| d.group() == Some(group))
        .map(|d| d.id)
        .min()
        .ok_or(Error::GroupNotFound(group))
}

/// Signature objects linked to a group, in table order.
pub fn group_signatures<F>(sif: &Sif<F>, group: u32) -> Vec<Descriptor> {
    signatures_linked(sif, Link::Group(group))
}

/// Signature objects linked to one object (legacy per-object signatures).
pub fn object_signatures<F>(sif: &Sif<F>, id: u32) -> Vec<Descriptor> {
    signatures_linked(sif, Link::Object(id))
}

fn signatures_linked<F>(sif: &Sif<F>, link: Link) -> Vec<Descriptor> {
    sif.descriptors()
        .filter(|d| d.data_type == DataType::SIGNATURE && d.link() == link)
        .copied()
        .collect()
}
