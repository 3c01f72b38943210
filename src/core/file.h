// core/file.h: files in and out. A read-only memory map of a whole file, reading a small file
// whole, and the atomic write (temporary name, fsync, rename) every file wafer writes goes through.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace wafer {

class MappedFile {
 public:
  // Maps `path` read-only; throws with the path and the OS error when it cannot.
  explicit MappedFile(const std::string& path);
  // Wraps bytes already in memory under a name for messages, without copying or owning them, so
  // the parsers that take a MappedFile also take a buffer (tests, fuzz/). `bytes` must outlive it.
  MappedFile(const std::string& name, std::string_view bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Drops the pages of [p, p + n) (inside this file) from the process's resident set: a loader that
  // has copied a tensor out of a mapped file calls it, so the file's pages do not add a second
  // copy of the weights to the peak RSS. They stay in the page cache and read back if touched.
  // A no-op for wrapped buffers.
  void release_pages(const uint8_t* p, size_t n) const;
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;  // we own an mmap to undo
};

std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

// Calls write(fd-backed stream function) on `path + ".tmp.<pid>"`, fsyncs, then renames over
// `path`, so a crash leaves the old file or the new one, never half of one.
// `write` gets a function that appends bytes.
void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& write);
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace wafer
