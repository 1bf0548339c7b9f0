// This file is long because it parses the whole .xz container (stream
// header and footer, index, block headers, checks) in one place; the
// comment after the imports says why lkbuild reads it itself.

package kernel

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// This file reads the structure of .xz files (the .xz file format,
// version 1.2.1, tukaani.org/xz/xz-file-format.txt) so that the blocks of a
// multi-block file can be decoded independently, in parallel: it parses
// stream headers and footers, the index, block headers, and computes the
// integrity checks. The LZMA2 data inside a block is decoded by
// github.com/ulikunitz/xz/lzma.

// Errors of xz decoding that callers can test for with errors.Is.
var (
	// ErrXZTruncated means an xz file ends early: its last stream footer,
	// or part of its data, is missing.
	ErrXZTruncated = errors.New("xz file is truncated")
	// ErrXZCorrupt means an xz file's structure or data is damaged: a bad
	// magic number, CRC, size, integrity check or LZMA2 stream.
	ErrXZCorrupt = errors.New("xz data is corrupt")
)

// XZ integrity check IDs (stream flags) that the decoder verifies.
const (
	XZCheckNone   = 0x00
	XZCheckCRC32  = 0x01
	XZCheckCRC64  = 0x04
	XZCheckSHA256 = 0x0A
)

const (
	xzHeaderSize  = 12
	xzFooterSize  = 12
	xzLZMA2Filter = 0x21
	xzMaxVarint   = 9
)

var (
	xzHeaderMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	xzFooterMagic = []byte{'Y', 'Z'}
)

// XZBlock is one block of an xz file, as the index of its stream lists it.
type XZBlock struct {
	// Offset is where the block header starts in the file.
	Offset int64
	// UnpaddedSize is the size of block header, compressed data and check,
	// without the block padding.
	UnpaddedSize int64
	// UncompressedSize is the size of the block's decoded data, and
	// UncompressedOffset where that data starts in the decoded file.
	UncompressedSize, UncompressedOffset int64
	// Check is the integrity check ID of the block's stream.
	Check byte
}

// XZIndex describes every block of an xz file, in file order, across
// concatenated streams.
type XZIndex struct {
	Blocks  []XZBlock
	Streams int
	// Size is the size of the decoded file.
	Size int64
	// MaxBlockSize is the largest UncompressedSize.
	MaxBlockSize int64
}

// ReadXZIndex reads the index of the xz file r of the given size: it walks
// the file from its end, stream by stream (footer, index, header, stream
// padding), and checks every CRC and size it meets on the way. It reads
// only those few parts of the file. Errors wrap ErrXZTruncated or
// ErrXZCorrupt.
func ReadXZIndex(r io.ReaderAt, size int64) (*XZIndex, error) {
	var magic [6]byte
	n, err := r.ReadAt(magic[:], 0)
	if n < len(magic) && err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the stream header: %w", err)
	}
	if !bytes.Equal(magic[:n], xzHeaderMagic) || n < len(magic) {
		return nil, fmt.Errorf("%w: not an xz file (no xz magic number)", ErrXZCorrupt)
	}
	var streams [][]XZBlock // last stream first
	for pos := size; pos > 0; {
		end, err := skipXZPadding(r, pos)
		if err != nil {
			return nil, err
		}
		blocks, start, err := readXZStream(r, end, len(streams) == 0)
		if err != nil {
			return nil, err
		}
		streams = append(streams, blocks)
		pos = start
	}
	idx := &XZIndex{Streams: len(streams)}
	var off int64
	for i := len(streams) - 1; i >= 0; i-- {
		for _, b := range streams[i] {
			b.UncompressedOffset = off
			off += b.UncompressedSize
			if off < 0 {
				return nil, fmt.Errorf("%w: decoded size overflows", ErrXZCorrupt)
			}
			idx.MaxBlockSize = max(idx.MaxBlockSize, b.UncompressedSize)
			idx.Blocks = append(idx.Blocks, b)
		}
	}
	idx.Size = off
	return idx, nil
}

// skipXZPadding returns where the stream padding (zero bytes, a multiple of
// four) that ends at end begins.
func skipXZPadding(r io.ReaderAt, end int64) (int64, error) {
	if end%4 != 0 {
		return 0, fmt.Errorf("%w: file size %d is not a multiple of four: no stream footer at the end", ErrXZTruncated, end)
	}
	var buf [4096]byte
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := r.ReadAt(buf[:n], end-n); err != nil {
			return 0, fmt.Errorf("read stream padding: %w", err)
		}
		i := int64(len(bytes.TrimRight(buf[:n], "\x00")))
		if i > 0 {
			// Padding is whole 4-byte words; a footer ends in "YZ".
			return end - n + (i+3)/4*4, nil
		}
		end -= n
	}
	return 0, fmt.Errorf("%w: the file holds only zero bytes", ErrXZCorrupt)
}

// readXZStream reads the stream that ends at end: its footer, index and
// header. It returns the blocks and where the stream starts. last is true
// for the stream at the very end of the file, whose missing footer means
// the file was cut short.
func readXZStream(r io.ReaderAt, end int64, last bool) ([]XZBlock, int64, error) {
	if end < xzHeaderSize+xzFooterSize {
		return nil, 0, fmt.Errorf("%w: %d bytes cannot hold a stream", ErrXZCorrupt, end)
	}
	var footer [xzFooterSize]byte
	if _, err := r.ReadAt(footer[:], end-xzFooterSize); err != nil {
		return nil, 0, fmt.Errorf("read the stream footer: %w", err)
	}
	if !bytes.Equal(footer[10:], xzFooterMagic) {
		if last {
			return nil, 0, fmt.Errorf("%w: no stream footer at the end", ErrXZTruncated)
		}
		return nil, 0, fmt.Errorf("%w: no stream footer before offset %d", ErrXZCorrupt, end)
	}
	if crc32.ChecksumIEEE(footer[4:10]) != binary.LittleEndian.Uint32(footer[:4]) {
		return nil, 0, fmt.Errorf("%w: stream footer CRC32 mismatch at offset %d", ErrXZCorrupt, end-xzFooterSize)
	}
	flags := [2]byte{footer[8], footer[9]}
	check, err := xzStreamCheck(flags)
	if err != nil {
		return nil, 0, err
	}
	indexSize := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	indexPos := end - xzFooterSize - indexSize
	if indexPos < xzHeaderSize {
		return nil, 0, fmt.Errorf("%w: index size %d does not fit in the stream", ErrXZCorrupt, indexSize)
	}
	records, err := readXZIndexRecords(io.NewSectionReader(r, indexPos, indexSize), indexSize, check)
	if err != nil {
		return nil, 0, fmt.Errorf("index at offset %d: %w", indexPos, err)
	}
	var blocksSize int64
	for _, rec := range records {
		blocksSize += (rec.UnpaddedSize + 3) &^ 3
		if blocksSize > indexPos {
			return nil, 0, fmt.Errorf("%w: the index lists more block data than the stream holds", ErrXZCorrupt)
		}
	}
	start := indexPos - blocksSize - xzHeaderSize
	if start < 0 {
		return nil, 0, fmt.Errorf("%w: the index lists more block data than the stream holds", ErrXZCorrupt)
	}
	var header [xzHeaderSize]byte
	if _, err := r.ReadAt(header[:], start); err != nil {
		return nil, 0, fmt.Errorf("read the stream header: %w", err)
	}
	if !bytes.Equal(header[:6], xzHeaderMagic) {
		return nil, 0, fmt.Errorf("%w: no stream header at offset %d, where the index puts it", ErrXZCorrupt, start)
	}
	if crc32.ChecksumIEEE(header[6:8]) != binary.LittleEndian.Uint32(header[8:]) {
		return nil, 0, fmt.Errorf("%w: stream header CRC32 mismatch at offset %d", ErrXZCorrupt, start)
	}
	if header[6] != flags[0] || header[7] != flags[1] {
		return nil, 0, fmt.Errorf("%w: stream header and footer flags differ at offset %d", ErrXZCorrupt, start)
	}
	off := start + xzHeaderSize
	for i := range records {
		records[i].Offset = off
		off += (records[i].UnpaddedSize + 3) &^ 3
	}
	return records, start, nil
}

// xzStreamCheck validates stream flags and returns the check ID.
func xzStreamCheck(flags [2]byte) (byte, error) {
	if flags[0] != 0 || flags[1]&0xF0 != 0 {
		return 0, fmt.Errorf("%w: reserved stream flags are set", ErrXZCorrupt)
	}
	check := flags[1] & 0x0F
	if xzCheckSize(check) < 0 {
		return 0, fmt.Errorf("%w: integrity check type %#x: %w", ErrXZCorrupt, check, errors.ErrUnsupported)
	}
	return check, nil
}

// xzCheckSize is the size of a check, or -1 for a check we cannot verify.
func xzCheckSize(check byte) int {
	switch check {
	case XZCheckNone:
		return 0
	case XZCheckCRC32:
		return 4
	case XZCheckCRC64:
		return 8
	case XZCheckSHA256:
		return 32
	}
	return -1
}

// readXZIndexRecords parses an index of size bytes (indicator, records,
// padding, CRC32) from r. It reads through a small buffer, so a large index
// costs no more memory than its records.
func readXZIndexRecords(r io.Reader, size int64, check byte) ([]XZBlock, error) {
	crc := crc32.NewIEEE()
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(r, size-4), crc), 4096)
	indicator, err := br.ReadByte()
	if err != nil || indicator != 0 {
		return nil, fmt.Errorf("%w: no index indicator", ErrXZCorrupt)
	}
	n := int64(1)
	count, k, err := readXZVarint(br)
	n += int64(k)
	if err != nil {
		return nil, fmt.Errorf("%w: number of records: %w", ErrXZCorrupt, err)
	}
	var blocks []XZBlock
	for i := uint64(0); i < count; i++ {
		unpadded, k1, err := readXZVarint(br)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrXZCorrupt, i, err)
		}
		uncompressed, k2, err := readXZVarint(br)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrXZCorrupt, i, err)
		}
		n += int64(k1 + k2)
		// The format's bounds; a block's header is checked against its
		// record when the block is decoded.
		if unpadded < 5 || unpadded > 1<<62 {
			return nil, fmt.Errorf("%w: record %d: unpadded size %d is out of range", ErrXZCorrupt, i, unpadded)
		}
		if uncompressed > 1<<62 {
			return nil, fmt.Errorf("%w: record %d: uncompressed size %d is out of range", ErrXZCorrupt, i, uncompressed)
		}
		blocks = append(blocks, XZBlock{
			UnpaddedSize:     int64(unpadded),
			UncompressedSize: int64(uncompressed),
			Check:            check,
		})
	}
	for ; n%4 != 0; n++ {
		b, err := br.ReadByte()
		if err != nil || b != 0 {
			return nil, fmt.Errorf("%w: bad index padding", ErrXZCorrupt)
		}
	}
	if n != size-4 {
		return nil, fmt.Errorf("%w: the index is %d bytes, its footer says %d", ErrXZCorrupt, n+4, size)
	}
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, fmt.Errorf("read index CRC32: %w", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != want {
		return nil, fmt.Errorf("%w: index CRC32 mismatch", ErrXZCorrupt)
	}
	return blocks, nil
}

// readXZVarint reads the xz multibyte integer encoding: 7 bits per byte,
// least significant first, at most 9 bytes, no trailing zero byte.
func readXZVarint(r io.ByteReader) (uint64, int, error) {
	var x uint64
	for i := 0; i < xzMaxVarint; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, i, fmt.Errorf("integer: %w", err)
		}
		if i > 0 && b == 0 {
			return 0, i + 1, errors.New("integer has a trailing zero byte")
		}
		x |= uint64(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			return x, i + 1, nil
		}
	}
	return 0, xzMaxVarint, errors.New("integer is longer than 9 bytes")
}

// xzBlockHeader is what decoding needs from a block header.
type xzBlockHeader struct {
	size    int   // of the header, a multiple of 4
	dictCap int64 // LZMA2 dictionary size
}

// parseXZBlockHeader parses and checks the block header of b, which hdr
// holds (it may be longer). Only an LZMA2 filter chain is supported, as
// in github.com/ulikunitz/xz.
func parseXZBlockHeader(hdr []byte, b XZBlock) (xzBlockHeader, error) {
	if len(hdr) == 0 || hdr[0] == 0 {
		return xzBlockHeader{}, errors.New("no block header")
	}
	size := (int(hdr[0]) + 1) * 4
	if len(hdr) < size {
		return xzBlockHeader{}, errors.New("block header is cut short")
	}
	hdr = hdr[:size]
	if crc32.ChecksumIEEE(hdr[:size-4]) != binary.LittleEndian.Uint32(hdr[size-4:]) {
		return xzBlockHeader{}, errors.New("block header CRC32 mismatch")
	}
	flags := hdr[1]
	if flags&0x3C != 0 {
		return xzBlockHeader{}, errors.New("reserved block flags are set")
	}
	br := bytes.NewReader(hdr[2 : size-4])
	compressed := b.UnpaddedSize - int64(size) - int64(xzCheckSize(b.Check))
	if compressed <= 0 {
		return xzBlockHeader{}, errors.New("block header is larger than the block")
	}
	if flags&0x40 != 0 {
		v, _, err := readXZVarint(br)
		if err != nil {
			return xzBlockHeader{}, fmt.Errorf("compressed size: %w", err)
		}
		if int64(v) != compressed {
			return xzBlockHeader{}, fmt.Errorf("block header says %d compressed bytes, the index %d", v, compressed)
		}
	}
	if flags&0x80 != 0 {
		v, _, err := readXZVarint(br)
		if err != nil {
			return xzBlockHeader{}, fmt.Errorf("uncompressed size: %w", err)
		}
		if int64(v) != b.UncompressedSize {
			return xzBlockHeader{}, fmt.Errorf("block header says %d uncompressed bytes, the index %d", v, b.UncompressedSize)
		}
	}
	if filters := int(flags&3) + 1; filters != 1 {
		return xzBlockHeader{}, fmt.Errorf("a chain of %d filters: %w (only LZMA2 alone is)", filters, errors.ErrUnsupported)
	}
	id, _, err := readXZVarint(br)
	if err != nil {
		return xzBlockHeader{}, fmt.Errorf("filter ID: %w", err)
	}
	if id != xzLZMA2Filter {
		return xzBlockHeader{}, fmt.Errorf("filter %#x: %w (only LZMA2 is)", id, errors.ErrUnsupported)
	}
	propSize, _, err := readXZVarint(br)
	if err != nil || propSize != 1 {
		return xzBlockHeader{}, errors.New("LZMA2 filter properties are not one byte")
	}
	prop, err := br.ReadByte()
	if err != nil || prop > 40 {
		return xzBlockHeader{}, errors.New("bad LZMA2 dictionary size")
	}
	for br.Len() > 0 {
		if p, _ := br.ReadByte(); p != 0 {
			return xzBlockHeader{}, errors.New("block header padding is not zero")
		}
	}
	// Dictionary size from its one-byte encoding (format spec, 5.3.1).
	dict := int64(0xFFFFFFFF)
	if prop < 40 {
		dict = int64(2|prop&1) << (prop/2 + 11)
	}
	return xzBlockHeader{size: size, dictCap: dict}, nil
}

// xzCheckSum computes check over data, in the byte order the file stores
// it in (little-endian for the CRCs).
func xzCheckSum(check byte, data []byte) []byte {
	switch check {
	case XZCheckCRC32:
		return binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))
	case XZCheckCRC64:
		return binary.LittleEndian.AppendUint64(nil, crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)))
	case XZCheckSHA256:
		s := sha256.Sum256(data)
		return s[:]
	}
	return nil
}
