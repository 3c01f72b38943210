// io/zip_archive.cpp: parses the end-of-central-directory record (and its zip64 twin), then
// the central directory; entry data is located through each local header.
#include "io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace wafer {

namespace {
uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }
}  // namespace

ZipArchive::ZipArchive(const std::string& path) : ZipArchive(std::make_unique<MappedFile>(path)) {}

ZipArchive::ZipArchive(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const uint8_t* d = file_->data();
  const size_t n = file_->size();
  auto bad = [&](const std::string& what) {
    fail(str_cat("[zip] ", path, ": ", what, " (corrupt or truncated archive?)"));
  };
  if (n < 22) bad(str_cat("expected a ZIP archive, found only ", n, " bytes"));
  size_t eocd = SIZE_MAX;
  for (size_t i = n - 22 + 1; i-- > 0 && n - i <= 22 + 65535;)
    if (rd32(d + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == SIZE_MAX) bad("no end-of-central-directory record: not a ZIP archive");
  uint64_t count = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_offset = rd32(d + eocd + 16);
  if (eocd >= 20 && rd32(d + eocd - 20) == 0x07064b50) {  // zip64 locator
    uint64_t z = rd64(d + eocd - 20 + 8);
    if (z > n || n - z < 56 || rd32(d + z) != 0x06064b50) bad("bad zip64 end-of-central-directory record");
    count = rd64(d + z + 32);
    cd_size = rd64(d + z + 40);
    cd_offset = rd64(d + z + 48);
  }
  if (cd_offset > n || cd_size > n - cd_offset) bad("central directory out of range");
  size_t p = cd_offset;
  for (uint64_t k = 0; k < count; ++k) {
    if (p + 46 > n || rd32(d + p) != 0x02014b50) bad(str_cat("central directory entry ", k, " is damaged"));
    Entry e;
    e.method = rd16(d + p + 10);
    e.crc = rd32(d + p + 16);
    e.compressed_size = rd32(d + p + 20);
    e.size = rd32(d + p + 24);
    uint16_t name_len = rd16(d + p + 28), extra_len = rd16(d + p + 30), comment_len = rd16(d + p + 32);
    e.local_offset = rd32(d + p + 42);
    if (p + 46 + name_len + extra_len + comment_len > n) bad("central directory entry runs past the end");
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    // zip64 extra field: the 0xFFFFFFFF fields above, in order, as 64-bit values.
    const uint8_t* x = d + p + 46 + name_len;
    for (size_t q = 0; q + 4 <= extra_len;) {
      uint16_t id = rd16(x + q), len = rd16(x + q + 2);
      if (id == 0x0001) {
        size_t r = q + 4;
        const size_t end = std::min(q + 4 + size_t(len), size_t(extra_len));  // a record may claim past the field
        auto take = [&](uint64_t& field) {
          if (field == 0xFFFFFFFFu && r + 8 <= end) {
            field = rd64(x + r);
            r += 8;
          }
        };
        take(e.size);
        take(e.compressed_size);
        take(e.local_offset);
      }
      q += 4 + size_t(len);
    }
    entries_[name] = e;
    p += 46 + name_len + extra_len + comment_len;
  }
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> v;
  for (const auto& [k, e] : entries_) v.push_back(k);
  return v;
}

std::string_view ZipArchive::read(const std::string& name) {
  auto it = entries_.find(name);
  WAFER_CHECK(it != entries_.end(), "[zip] ", path(), ": missing entry '", name, "' (corrupt archive?)");
  const Entry& e = it->second;
  const uint8_t* d = file_->data();
  const size_t n = file_->size();
  WAFER_CHECK(e.local_offset <= n && n - e.local_offset >= 30 && rd32(d + e.local_offset) == 0x04034b50, "[zip] ", path(), ": entry '", name,
              "' has a damaged local header (corrupt or truncated archive?)");
  uint64_t start = e.local_offset + 30 + rd16(d + e.local_offset + 26) + rd16(d + e.local_offset + 28);
  WAFER_CHECK(start <= n && e.compressed_size <= n - start, "[zip] ", path(), ": entry '", name, "' needs ",
              e.compressed_size, " bytes at offset ", start, " but the file has ", n, " (truncated archive?)");
  std::string_view out;
  if (e.method == 0) {
    WAFER_CHECK(e.compressed_size == e.size, "[zip] ", path(), ": stored entry '", name, "' has mismatched sizes");
    out = std::string_view(reinterpret_cast<const char*>(d + start), e.size);
  } else if (e.method == 8) {
    // Deflate expands at most 1032:1, so a larger stated size is a corrupt header, not a reason to
    // allocate it.
    WAFER_CHECK(e.size <= (e.compressed_size + 1) * 1032, "[zip] ", path(), ": entry '", name, "' states ", e.size,
                " bytes from ", e.compressed_size, " deflated, more than deflate can expand to (corrupt archive?)");
    auto cached = inflated_.find(name);
    if (cached == inflated_.end()) {
      std::string buf(e.size, '\0');
      z_stream zs{};
      WAFER_ASSERT(inflateInit2(&zs, -MAX_WBITS) == Z_OK);
      zs.next_in = const_cast<Bytef*>(d + start);
      zs.avail_in = uInt(e.compressed_size);
      zs.next_out = reinterpret_cast<Bytef*>(buf.data());
      zs.avail_out = uInt(e.size);
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      WAFER_CHECK(rc == Z_STREAM_END && zs.total_out == e.size, "[zip] ", path(), ": entry '", name,
                  "' does not inflate to its stated ", e.size, " bytes (corrupt archive?)");
      cached = inflated_.emplace(name, std::move(buf)).first;
    }
    out = cached->second;
  } else {
    fail(str_cat("[zip] ", path(), ": entry '", name, "' uses compression method ", e.method,
                 "; expected 0 (stored) or 8 (deflate)"));
  }
  uLong crc = crc32_z(0L, reinterpret_cast<const Bytef*>(out.data()), out.size());
  WAFER_CHECK(crc == e.crc, "[zip] ", path(), ": entry '", name, "' fails its CRC-32 check (corrupt archive?)");
  return out;
}

}  // namespace wafer
