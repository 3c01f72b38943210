// core/file.cpp: mmap, whole-file reads and atomic writes on POSIX.
#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace wafer {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  WAFER_CHECK(fd >= 0, "[open] cannot open ", path, ": ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(str_cat("[open] ", path, " is not a regular file"));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    WAFER_CHECK(p != MAP_FAILED, "[mmap] cannot map ", path, ": ", std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
    mapped_ = true;
  } else {
    ::close(fd);
  }
}

MappedFile::MappedFile(const std::string& name, std::string_view bytes)
    : path_(name), data_(reinterpret_cast<const uint8_t*>(bytes.data())), size_(bytes.size()) {}

void MappedFile::release_pages(const uint8_t* p, size_t n) const {
  if (!mapped_ || p < data_ || p + n > data_ + size_ || n == 0) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = uintptr_t(p) & ~(page - 1), end = (uintptr_t(p) + n + page - 1) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // read-only private map: re-read on touch
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  WAFER_CHECK(f.good(), "[read] cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& write) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  WAFER_CHECK(fd >= 0, "[write] cannot create ", tmp, ": ", std::strerror(errno));
  std::string error;
  auto append = [&](const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0 && error.empty()) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        error = std::strerror(errno);
        break;
      }
      c += w;
      n -= size_t(w);
    }
  };
  try {
    write(append);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
  ::close(fd);
  if (error.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) error = std::strerror(errno);
  if (!error.empty()) {
    ::unlink(tmp.c_str());
    fail(str_cat("[write] cannot write ", path, ": ", error));
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  write_file_atomic(path, [&](const auto& append) { append(contents.data(), contents.size()); });
}

}  // namespace wafer
