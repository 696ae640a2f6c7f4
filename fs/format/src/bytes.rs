//! Bounds-checked little-endian cursors over byte slices.
//!
//! Every read past the end returns [`FormatError::Truncated`] and every write
//! past the end returns [`FormatError::NoSpace`]; nothing here can panic.

use super::error::{FormatError, Result};

/// Reads little-endian fields from a byte slice, front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(FormatError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(FormatError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

/// Writes little-endian fields into a byte slice, front to back.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Copy `data` in.
    pub fn bytes(&mut self, data: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(data.len()).ok_or(FormatError::NoSpace)?;
        self.buf.get_mut(self.pos..end).ok_or(FormatError::NoSpace)?.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    /// Write `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> Result<()> {
        let end = self.pos.checked_add(n).ok_or(FormatError::NoSpace)?;
        self.buf.get_mut(self.pos..end).ok_or(FormatError::NoSpace)?.fill(0);
        self.pos = end;
        Ok(())
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }
    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    /// A little-endian `i64`.
    pub fn i64(&mut self, v: i64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }
}

/// Read a little-endian `u32` at `off` of `buf`.
pub fn get_u32(buf: &[u8], off: usize) -> Result<u32> {
    let mut r = Reader::new(buf.get(off..).ok_or(FormatError::Truncated)?);
    r.u32()
}

/// Read a little-endian `u64` at `off` of `buf`.
pub fn get_u64(buf: &[u8], off: usize) -> Result<u64> {
    let mut r = Reader::new(buf.get(off..).ok_or(FormatError::Truncated)?);
    r.u64()
}

/// Write a little-endian `u64` at `off` of `buf`.
pub fn put_u64(buf: &mut [u8], off: usize, v: u64) -> Result<()> {
    let mut w = Writer::new(buf.get_mut(off..).ok_or(FormatError::NoSpace)?);
    w.u64(v)
}

/// Write a little-endian `u32` at `off` of `buf`.
pub fn put_u32(buf: &mut [u8], off: usize, v: u32) -> Result<()> {
    let mut w = Writer::new(buf.get_mut(off..).ok_or(FormatError::NoSpace)?);
    w.u32(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_end() {
        let buf = [1u8, 2, 3];
        let mut r = Reader::new(&buf);
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u16(), Err(FormatError::Truncated));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.bytes(usize::MAX), Err(FormatError::Truncated));
    }

    #[test]
    fn writer_stops_at_end() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u32(0xaabbccdd), Ok(()));
        assert_eq!(w.u16(1), Err(FormatError::NoSpace));
        assert_eq!(w.u8(7), Ok(()));
        assert_eq!(buf, [0xdd, 0xcc, 0xbb, 0xaa, 7]);
    }
}
