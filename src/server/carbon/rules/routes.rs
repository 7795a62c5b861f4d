//! Where each received name goes, worked out once by the rules and kept:
//! a name costs one lookup per point after its first.
//!
//! The table is laid out for that lookup. The hash index holds only a
//! 4-byte position per name, so it stays in the processor's cache even with
//! a million names; the routes sit in a vector, and the names end to end in
//! one string, both in the order the names were first seen, the order
//! agents send them again every interval, so reading them mostly follows
//! memory forward. (A map of names to routes put each name's 88-byte entry
//! at a random place in 1.4 MB at 10 000 names, and its name at another:
//! three quarters of a lookup's time was that first read.)

use super::aggregation::Method;
use super::buffers::Hint;
use std::hash::BuildHasher;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;

/// Where a received name goes.
#[derive(Debug)]
pub struct Route {
    /// The output metrics it feeds, with the frequency and method of the
    /// rule that named each, and where its buffer was last found.
    pub outputs: Vec<(Arc<str>, u64, Method, Hint)>,
    pub forward: Forward,
    /// The names the rules made of it that cannot be stored, and why:
    /// each of its points counts them.
    pub rejects: Vec<(Box<str>, Box<str>)>,
}

impl Route {
    /// Bytes the route holds outside the table: its vectors' whole
    /// capacity, not only what is used.
    fn heap_bytes(&self) -> usize {
        self.outputs.capacity() * size_of::<(Arc<str>, u64, Method, Hint)>()
            + self
                .outputs
                .iter()
                .map(|(o, ..)| 16 + o.len())
                .sum::<usize>()
            + self.rejects.capacity() * size_of::<(Box<str>, Box<str>)>()
            + self
                .rejects
                .iter()
                .map(|(n, why)| n.len() + why.len())
                .sum::<usize>()
            + match &self.forward {
                Forward::As(n) => n.len(),
                _ => 0,
            }
    }
}

#[derive(Debug, PartialEq)]
pub enum Forward {
    No,
    /// Under the name it came with.
    Same,
    As(Box<str>),
}

/// The routes of the names seen, bounded in bytes: past `max_bytes` they
/// are all forgotten and worked out again as names come.
pub struct Routes {
    index: hashbrown::HashTable<u32>,
    /// Each route with where its name is in `names`.
    named: Vec<(u32, u32, Route)>,
    names: String,
    hasher: Hasher,
    /// Bytes the routes hold outside the table.
    heap: usize,
    max_bytes: usize,
}

/// Bytes the hash index takes per name it has room for: a position and a
/// control byte per bucket, with an eighth of the buckets kept empty.
const INDEX_BYTES: usize = 6;

impl Routes {
    pub fn new(max_bytes: usize) -> Routes {
        Routes {
            index: hashbrown::HashTable::new(),
            named: Vec::new(),
            names: String::new(),
            hasher: Hasher::default(),
            heap: 0,
            max_bytes,
        }
    }

    /// The name of a route kept.
    fn name<'a>(names: &'a str, named: &[(u32, u32, Route)], at: u32) -> &'a str {
        let (start, len, _) = named[at as usize];
        &names[start as usize..(start + len) as usize]
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Route> {
        let (names, named) = (&self.names, &self.named);
        let at = *self.index.find(self.hasher.hash_one(name), |&i| {
            Self::name(names, named, i) == name
        })?;
        Some(&mut self.named[at as usize].2)
    }

    /// The bytes the table and its routes hold (the vectors' and index's
    /// whole capacity, not only what is used).
    pub fn bytes(&self) -> usize {
        self.heap
            + self.named.capacity() * size_of::<(u32, u32, Route)>()
            + self.names.capacity()
            + self.index.capacity() * INDEX_BYTES
    }

    /// Keeps `route` for `name` (not yet kept), and gives it back. When the
    /// table would pass its bound, growing for it, all are forgotten first.
    pub fn insert(&mut self, name: &str, mut route: Route) -> &mut Route {
        // Built by pushing, its vectors have room for four or more; a route
        // kept never grows, so it keeps only what it uses.
        route.outputs.shrink_to_fit();
        route.rejects.shrink_to_fit();
        // What growing for one more takes (each doubles when full).
        let grows = |len: usize, capacity: usize, more: usize, size: usize| {
            if len + more > capacity {
                capacity.max(more).max(4) * size
            } else {
                0
            }
        };
        let heap = route.heap_bytes();
        let after = self.bytes()
            + heap
            + grows(
                self.named.len(),
                self.named.capacity(),
                1,
                size_of::<(u32, u32, Route)>(),
            )
            + grows(self.names.len(), self.names.capacity(), name.len(), 1)
            + grows(self.index.len(), self.index.capacity(), 1, INDEX_BYTES);
        // Positions are 32-bit: the bound keeps the names well under 4 GiB.
        if after > self.max_bytes || self.names.len() + name.len() > u32::MAX as usize {
            self.clear();
        }
        self.heap += heap;
        let at = self.named.len();
        self.named
            .push((self.names.len() as u32, name.len() as u32, route));
        self.names.push_str(name);
        let (names, named, hasher) = (&self.names, &self.named, &self.hasher);
        self.index
            .insert_unique(hasher.hash_one(name), at as u32, |&i| {
                hasher.hash_one(Self::name(names, named, i))
            });
        &mut self.named[at].2
    }

    pub fn clear(&mut self) {
        self.index = hashbrown::HashTable::new();
        self.named = Vec::new();
        self.names = String::new();
        self.heap = 0;
    }

    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.named.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same() -> Route {
        Route {
            outputs: Vec::new(),
            forward: Forward::Same,
            rejects: Vec::new(),
        }
    }

    #[test]
    fn a_name_finds_its_own_route_among_many_and_the_bound_forgets_them_all() {
        let mut r = Routes::new(1 << 20);
        for k in 0..5000 {
            r.insert(&format!("a.b.m{k}"), same());
        }
        r.insert(
            "renamed",
            Route {
                forward: Forward::As("other".into()),
                ..same()
            },
        );
        assert_eq!(r.kept(), 5001);
        for k in (0..5000).step_by(7) {
            assert_eq!(
                r.get_mut(&format!("a.b.m{k}")).map(|r| &r.forward),
                Some(&Forward::Same)
            );
        }
        assert_eq!(
            r.get_mut("renamed").map(|r| &r.forward),
            Some(&Forward::As("other".into()))
        );
        assert!(r.get_mut("a.b.m5000").is_none());
        // Past the bound, all are forgotten; the one added is kept. The
        // bound holds for the memory the table has, growing included.
        let mut small = Routes::new(64 << 10);
        let mut cleared = 0;
        for k in 0..10_000 {
            let before = small.kept();
            small.insert(&format!("metric.{k:05}"), same());
            cleared += usize::from(small.kept() <= before);
            assert!(small.bytes() <= 64 << 10, "{} at {k}", small.bytes());
        }
        assert!(cleared > 5, "{cleared}");
        assert!(small.get_mut("metric.09999").is_some());
        assert!(small.get_mut("metric.00000").is_none());
    }

    #[test]
    #[allow(clippy::vec_init_then_push)]
    fn a_route_kept_holds_and_counts_only_the_room_it_uses() {
        // Built as the rules build it: pushing gives room for four.
        let mut rejects = Vec::new();
        rejects.push(("bad name".into(), "why".into()));
        assert!(rejects.capacity() > 1);
        let mut r = Routes::new(1 << 20);
        let empty = r.bytes();
        let route = r.insert("a.b", Route { rejects, ..same() });
        assert_eq!(route.rejects.capacity(), 1);
        let counted = route.heap_bytes();
        assert_eq!(counted, size_of::<(Box<str>, Box<str>)>() + 8 + 3);
        assert!(r.bytes() >= empty + counted);
    }
}
