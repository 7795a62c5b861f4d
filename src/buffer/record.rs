//! One buffered sample on disk: a frame (`u32` length, `u32` CRC-32 of the
//! payload, the payload, all little-endian) around the sample's fields.
//! A frame that is cut short or whose checksum does not match ends what
//! can be read (a torn last write, or damage), and says where.

use crate::prometheus::Kind as PromKind;
use crate::sample::{Kind, Prom, Sample, Series};
use std::borrow::Cow;

/// The frame header: payload length and checksum.
pub const HEADER: usize = 8;

/// The largest payload a frame may announce: a sample is a name, a few
/// tags and labels; anything larger is damage, not a sample.
pub const MAX_PAYLOAD: usize = 1 << 20;

const KIND_RATE: u8 = 1;
const HAS_DELTA: u8 = 2;
const PROM_HIDDEN: u8 = 4;
const PROM_SERIES: u8 = 8;

/// Appends `s` as one frame to `out`.
pub fn encode(s: &Sample, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let mut flags = 0;
    if s.kind == Kind::Rate {
        flags |= KIND_RATE;
    }
    if s.delta.is_some() {
        flags |= HAS_DELTA;
    }
    match s.prom {
        Prom::Mapped => {}
        Prom::Hidden => flags |= PROM_HIDDEN,
        Prom::Series(_) => flags |= PROM_SERIES,
    }
    out.push(flags);
    out.extend_from_slice(&s.value.to_le_bytes());
    out.extend_from_slice(&s.timestamp.to_le_bytes());
    if let Some(d) = s.delta {
        out.extend_from_slice(&d.to_le_bytes());
    }
    put_str(out, &s.name);
    put_pairs(out, s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Prom::Series(series) = &s.prom {
        put_str(out, &series.name);
        out.push(match series.kind {
            PromKind::Counter => 0,
            PromKind::Gauge => 1,
            PromKind::Untyped => 2,
            PromKind::Histogram => 3,
            PromKind::Summary => 4,
        });
        put_str(out, &series.help);
        put_pairs(
            out,
            series.labels.iter().map(|(k, v)| (k.as_ref(), v.as_str())),
        );
    }
    let len = (out.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_pairs<'a>(out: &mut Vec<u8>, pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        put_str(out, k);
        put_str(out, v);
    }
}

/// Why reading stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("a record cut short at byte {0}")]
    Torn(usize),
    #[error("a record whose checksum does not match at byte {0}")]
    Checksum(usize),
    #[error("a record that is not a sample at byte {0}")]
    Malformed(usize),
}

impl Damage {
    /// Where the damaged record starts: what comes before it is whole.
    pub fn offset(&self) -> usize {
        match self {
            Damage::Torn(o) | Damage::Checksum(o) | Damage::Malformed(o) => *o,
        }
    }
}

/// Reads the frame at the start of `bytes`: the sample and the frame's
/// length, `None` at the end of the bytes, or why it cannot be read
/// (offsets relative to `bytes`).
pub fn decode(bytes: &[u8]) -> Result<Option<(Sample, usize)>, Damage> {
    let (len, payload) = match frame(bytes)? {
        Some(f) => f,
        None => return Ok(None),
    };
    let s = parse(payload).ok_or(Damage::Malformed(0))?;
    Ok(Some((s, len)))
}

/// The length and checked payload of the frame at the start of `bytes`,
/// without decoding the sample.
pub fn frame(bytes: &[u8]) -> Result<Option<(usize, &[u8])>, Damage> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() < HEADER {
        return Err(Damage::Torn(0));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len > MAX_PAYLOAD {
        return Err(Damage::Malformed(0));
    }
    let Some(payload) = bytes.get(HEADER..HEADER + len) else {
        return Err(Damage::Torn(0));
    };
    if crc32fast::hash(payload) != crc {
        return Err(Damage::Checksum(0));
    }
    Ok(Some((HEADER + len, payload)))
}

/// Every whole record of `bytes` in order, and the damage that ended the
/// reading early, if any.
pub fn decode_all(bytes: &[u8]) -> (Vec<Sample>, Option<Damage>) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match decode(&bytes[at..]) {
            Ok(Some((s, n))) => {
                out.push(s);
                at += n;
            }
            Ok(None) => return (out, None),
            Err(d) => {
                let moved = match d {
                    Damage::Torn(o) => Damage::Torn(o + at),
                    Damage::Checksum(o) => Damage::Checksum(o + at),
                    Damage::Malformed(o) => Damage::Malformed(o + at),
                };
                return (out, Some(moved));
            }
        }
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).ok()
    }
    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.u32()? as usize;
        // Each pair takes at least 8 bytes: a count beyond that is damage.
        if n > self.0.len() / 8 {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push((self.string()?, self.string()?));
        }
        Some(out)
    }
}

fn parse(payload: &[u8]) -> Option<Sample> {
    let mut c = Cursor(payload);
    let flags = c.u8()?;
    if flags & !(KIND_RATE | HAS_DELTA | PROM_HIDDEN | PROM_SERIES) != 0
        || flags & (PROM_HIDDEN | PROM_SERIES) == PROM_HIDDEN | PROM_SERIES
    {
        return None;
    }
    let value = f64::from_bits(c.u64()?);
    let timestamp = c.u64()? as i64;
    let delta = if flags & HAS_DELTA != 0 {
        Some(f64::from_bits(c.u64()?))
    } else {
        None
    };
    let name = c.string()?;
    let tags = c.pairs()?;
    let prom = if flags & PROM_HIDDEN != 0 {
        Prom::Hidden
    } else if flags & PROM_SERIES != 0 {
        let name = c.string()?;
        let kind = match c.u8()? {
            0 => PromKind::Counter,
            1 => PromKind::Gauge,
            2 => PromKind::Untyped,
            3 => PromKind::Histogram,
            4 => PromKind::Summary,
            _ => return None,
        };
        let help = c.string()?;
        let labels = c
            .pairs()?
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), v))
            .collect();
        Prom::Series(Box::new(Series {
            name: Cow::Owned(name),
            kind,
            help: Cow::Owned(help),
            labels,
        }))
    } else {
        Prom::Mapped
    };
    if !c.0.is_empty() {
        return None;
    }
    Some(Sample {
        name,
        value,
        timestamp,
        kind: if flags & KIND_RATE != 0 {
            Kind::Rate
        } else {
            Kind::Gauge
        },
        delta,
        tags,
        prom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        let mut a = Sample::new(
            "servers.web01.cpu.total.user".into(),
            12.5,
            1_700_000_000,
            Kind::Rate,
        );
        a.delta = Some(125.0);
        a.tags = vec![("dc".into(), "par1".into())];
        let mut b = Sample::new(
            "servers.web01.loadavg.01".into(),
            0.25,
            1_700_000_001,
            Kind::Gauge,
        );
        b.prom = Prom::Hidden;
        let c = Sample::series(
            Series {
                name: Cow::Borrowed("node_cpu_seconds_total"),
                kind: PromKind::Counter,
                help: Cow::Borrowed("Seconds the CPUs spent in each mode."),
                labels: vec![
                    (Cow::Borrowed("cpu"), "0".into()),
                    (Cow::Borrowed("mode"), "user".into()),
                ],
            },
            f64::NAN,
            -5,
        );
        vec![a, b, c]
    }

    #[test]
    fn samples_read_back_as_written() {
        let mut bytes = Vec::new();
        for s in samples() {
            encode(&s, &mut bytes);
        }
        let (got, damage) = decode_all(&bytes);
        assert_eq!(damage, None);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], samples()[0]);
        assert_eq!(got[1], samples()[1]);
        // NaN is not equal to itself: compare the rest, and the bits.
        assert_eq!(got[2].value.to_bits(), f64::NAN.to_bits());
        assert_eq!(got[2].prom, samples()[2].prom);
        assert_eq!(got[2].timestamp, -5);
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_reading_where_it_starts() {
        let mut bytes = Vec::new();
        for s in samples() {
            encode(&s, &mut bytes);
        }
        let first = decode(&bytes).expect("whole").expect("one").1;
        let second = first + decode(&bytes[first..]).expect("whole").expect("one").1;
        // Cut anywhere inside the third record: two come back.
        for cut in second + 1..bytes.len() {
            let (got, damage) = decode_all(&bytes[..cut]);
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(damage, Some(Damage::Torn(second)), "cut at {cut}");
        }
        // A flipped bit in the second record's payload.
        let mut bad = bytes.clone();
        bad[first + HEADER + 3] ^= 1;
        let (got, damage) = decode_all(&bad);
        assert_eq!(got.len(), 1);
        assert_eq!(damage, Some(Damage::Checksum(first)));
        // A length beyond any sample.
        let mut bad = bytes;
        bad[first + 3] = 0xff;
        assert_eq!(decode_all(&bad).1, Some(Damage::Malformed(first)));
    }
}
