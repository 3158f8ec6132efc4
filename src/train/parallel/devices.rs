//! Which wgpu devices a process trains on (`--devices`).

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::gpu::{AdapterChoice, GpuContext};

/// The devices of a process: one replica each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// One device on each adapter of the best backend and kind.
    All,
    /// A device on each listed adapter (indices best first, as `bitspike info` lists
    /// them); an index may repeat, which opens several devices on one adapter.
    List(Vec<usize>),
}

impl Default for Devices {
    /// One device on the best adapter.
    fn default() -> Self {
        Devices::List(vec![0])
    }
}

impl Devices {
    /// The adapter index of each replica.
    pub fn adapter_indices(&self, choice: &AdapterChoice) -> Result<Vec<usize>> {
        match self {
            Devices::All => Ok((0..GpuContext::distinct_adapters(choice)?).collect()),
            Devices::List(list) => Ok(list.clone()),
        }
    }

    /// How many replicas, when it is known without looking at the adapters.
    pub fn known_count(&self) -> Option<usize> {
        match self {
            Devices::All => None,
            Devices::List(list) => Some(list.len()),
        }
    }
}

/// The most devices one process may open.
const MAX_DEVICES: usize = 64;

impl FromStr for Devices {
    type Err = Error;

    /// `all`, or adapter indices separated by commas (`0,1`, or `0,0` for two devices on
    /// the first adapter).
    fn from_str(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(Devices::All);
        }
        let bad = |why: &str| Error::OutOfRange {
            field: "devices".into(),
            value: s.into(),
            allowed: format!("'all' or adapter indices separated by commas ({why})"),
        };
        let list = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| bad("each a number such as 0"))?;
        if list.is_empty() || list.len() > MAX_DEVICES {
            return Err(bad(&format!("1 to {MAX_DEVICES} of them")));
        }
        Ok(Devices::List(list))
    }
}

#[cfg(test)]
mod tests {
    use super::Devices;

    #[test]
    fn parses_all_and_lists() {
        assert_eq!("all".parse::<Devices>().unwrap(), Devices::All);
        assert_eq!(
            "0, 0,1".parse::<Devices>().unwrap(),
            Devices::List(vec![0, 0, 1])
        );
        for bad in ["", "0,", "x", "-1", "0;1"] {
            let e = bad.parse::<Devices>().unwrap_err().to_string();
            assert!(e.contains("devices"), "{bad}: {e}");
        }
    }
}
