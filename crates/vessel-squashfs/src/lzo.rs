//! A bounded, panic-free LZO1X decompressor (the "lzo" compressor).
//!
//! Written from the LZO1X stream description: a sequence of literal runs and
//! back-references whose encoding depends on how many literals the previous
//! instruction copied ("state"). Every length and distance is checked against
//! the input, the output so far and the `max` output size.

/// Decompresses an LZO1X stream into at most `max` bytes.
pub(crate) fn decompress(src: &[u8], max: usize) -> Result<Vec<u8>, &'static str> {
    let mut d = Decoder {
        src,
        ip: 0,
        out: Vec::with_capacity(max),
        max,
    };
    d.run()?;
    Ok(d.out)
}

struct Decoder<'a> {
    src: &'a [u8],
    ip: usize,
    out: Vec<u8>,
    max: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<usize, &'static str> {
        let b = *self.src.get(self.ip).ok_or("lzo: truncated input")?;
        self.ip += 1;
        Ok(usize::from(b))
    }

    fn le16(&mut self) -> Result<usize, &'static str> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(lo | (hi << 8))
    }

    /// A length that continues in extra bytes: each zero byte adds 255, the
    /// first non-zero byte ends it.
    fn long_len(&mut self, base: usize) -> Result<usize, &'static str> {
        let mut len = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(len + b);
            }
            len += 255;
            if len > self.max {
                return Err("lzo: length too large");
            }
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), &'static str> {
        let end = self.ip.checked_add(n).ok_or("lzo: overflow")?;
        let lit = self
            .src
            .get(self.ip..end)
            .ok_or("lzo: truncated literal run")?;
        if self.out.len() + n > self.max {
            return Err("lzo: output larger than a block");
        }
        self.out.extend_from_slice(lit);
        self.ip = end;
        Ok(())
    }

    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), &'static str> {
        if dist == 0 || dist > self.out.len() {
            return Err("lzo: match distance before start of output");
        }
        if self.out.len() + len > self.max {
            return Err("lzo: output larger than a block");
        }
        // Byte by byte: an overlapping match (dist < len) repeats a pattern.
        let start = self.out.len() - dist;
        for k in 0..len {
            let b = self.out[start + k];
            self.out.push(b);
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), &'static str> {
        // Number of literals the previous instruction copied (4 = "4 or more").
        let mut state: usize = 0;
        let first = usize::from(*self.src.first().ok_or("lzo: empty input")?);
        if first > 17 {
            self.ip = 1;
            let t = first - 17;
            self.literals(t)?;
            state = t.min(4);
        }
        loop {
            let inst = self.byte()?;
            let (len, dist, next) = if inst >= 64 {
                // M2: short match within 2 KiB; 3-4 bytes (01LDDDSS) or 5-8 (1LLDDDSS).
                let len = if inst >= 128 {
                    5 + ((inst >> 5) & 3)
                } else {
                    3 + ((inst >> 5) & 1)
                };
                let h = self.byte()?;
                (len, (h << 3) + ((inst >> 2) & 7) + 1, inst & 3)
            } else if inst >= 32 {
                // M3: match within 16 KiB.
                let l = inst & 31;
                let len = 2 + if l == 0 { self.long_len(31)? } else { l };
                let v = self.le16()?;
                (len, (v >> 2) + 1, v & 3)
            } else if inst >= 16 {
                // M4: match 16..48 KiB back; distance 16384 exactly ends the stream.
                let l = inst & 7;
                let len = 2 + if l == 0 { self.long_len(7)? } else { l };
                let v = self.le16()?;
                let d = ((inst & 8) << 11) + (v >> 2);
                if d == 0 {
                    return Ok(());
                }
                (len, 16384 + d, v & 3)
            } else if state == 0 {
                // Literal run of 4 or more bytes.
                let len = 3 + if inst == 0 { self.long_len(15)? } else { inst };
                self.literals(len)?;
                state = 4;
                continue;
            } else if state < 4 {
                // Two-byte match within 1 KiB (after a short literal copy).
                let h = self.byte()?;
                (2, (h << 2) + (inst >> 2) + 1, inst & 3)
            } else {
                // Three-byte match 2..3 KiB back (after a long literal run).
                let h = self.byte()?;
                (3, (h << 2) + (inst >> 2) + 2049, inst & 3)
            };
            self.copy_match(dist, len)?;
            self.literals(next)?;
            state = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decompress;

    #[test]
    fn literal_only_stream() {
        // First byte 17+5: five literals, then the end marker (M4, distance 16384).
        let s = [22, b'h', b'e', b'l', b'l', b'o', 0x11, 0, 0];
        assert_eq!(decompress(&s, 100).unwrap(), b"hello");
        assert!(decompress(&s, 4).is_err(), "output cap is enforced");
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 1;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decompress(&data, 4096);
        }
        // A match reaching before the start of the output is an error.
        assert!(decompress(&[0x40, 0xff, 0x11, 0, 0], 100).is_err());
    }
}
