// io/zip_archive.h: read-only ZIP archives (what torch.save writes since PyTorch 1.6): the
// central directory, zip64 records, stored and deflated entries, CRC-32 checked on read.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/file.h"

namespace wafer {

class ZipArchive {
 public:
  explicit ZipArchive(const std::string& path);
  // The same over bytes already mapped or in memory (MappedFile's buffer constructor).
  explicit ZipArchive(std::unique_ptr<MappedFile> file);

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Names of all entries, sorted.
  std::vector<std::string> names() const;
  // The entry's bytes, CRC-checked: a view into the mapped file for stored entries, an
  // inflated copy (kept by the archive) for deflated ones. Throws naming the entry.
  std::string_view read(const std::string& name);
  const std::string& path() const { return file_->path(); }

 private:
  struct Entry {
    uint16_t method;
    uint32_t crc;
    uint64_t compressed_size, size, local_offset;
  };
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> inflated_;
};

}  // namespace wafer
