// fuzz/zip_writer.h: a minimal stored (uncompressed) ZIP writer, so the pickle harness can put
// fuzzed data.pkl bytes in a valid archive and reach the unpickler past the CRC check.
#pragma once
#include <zlib.h>

#include <string>
#include <utility>
#include <vector>

namespace wafer::fuzz {

inline std::string make_stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  auto put16 = [](std::string& s, uint32_t v) { s += char(v & 0xFF), s += char(v >> 8 & 0xFF); };
  auto put32 = [&](std::string& s, uint32_t v) { put16(s, v & 0xFFFF), put16(s, v >> 16); };
  std::string out, cd;
  for (const auto& [name, body] : entries) {
    const uint32_t crc = uint32_t(crc32_z(0L, reinterpret_cast<const Bytef*>(body.data()), body.size()));
    const uint32_t offset = uint32_t(out.size());
    put32(out, 0x04034b50);
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0);  // version, flags, method, time, date
    put32(out, crc), put32(out, uint32_t(body.size())), put32(out, uint32_t(body.size()));
    put16(out, uint32_t(name.size())), put16(out, 0);
    out += name;
    out += body;
    put32(cd, 0x02014b50);
    put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, crc), put32(cd, uint32_t(body.size())), put32(cd, uint32_t(body.size()));
    put16(cd, uint32_t(name.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, offset);
    cd += name;
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out += cd;
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0), put16(out, uint32_t(entries.size())), put16(out, uint32_t(entries.size()));
  put32(out, uint32_t(cd.size())), put32(out, cd_offset), put16(out, 0);
  return out;
}

}  // namespace wafer::fuzz
