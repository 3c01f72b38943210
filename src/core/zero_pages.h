// core/zero_pages.h: a fixed-size array that starts as zeros and commits memory only where it is
// written. Its storage is an anonymous private mapping: the kernel hands out zero pages and
// commits a page on its first write, so an array of n elements costs nothing until used, and a
// part never written never costs anything. std::vector<float>(n) writes every element (value
// initialisation), committing all of it at once.
//
// Model::params lives here. A quantized model never writes the fp32 pages of its matrices (their
// blocks come from a GGUF file or replace them), so a 13B model's 52 GB of fp32 matrices stay
// uncommitted and the process takes about the size of its quantized weights.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace wafer {

// `bytes` of zeros from an anonymous mapping (nullptr for 0); throws naming the size when the
// system refuses. unmap_zero_pages gives them back.
void* map_zero_pages(size_t bytes);
void unmap_zero_pages(void* p, size_t bytes);

template <class T>
class ZeroPages {
  static_assert(std::is_trivially_copyable_v<T>, "ZeroPages holds plain values (zero bytes must be a zero value)");

 public:
  ZeroPages() = default;
  explicit ZeroPages(size_t n) : data_(static_cast<T*>(map_zero_pages(n * sizeof(T)))), size_(n) {}
  ZeroPages(const ZeroPages& o) : ZeroPages(o.size_) { std::copy(o.begin(), o.end(), data_); }
  ZeroPages(ZeroPages&& o) noexcept { swap(o); }
  // Copying into an array of the same size writes in place, so views into it stay valid (as
  // std::vector's assignment keeps its storage); another size maps anew.
  ZeroPages& operator=(const ZeroPages& o) {
    if (this == &o) return *this;
    if (size_ != o.size_) {
      ZeroPages fresh(o.size_);
      swap(fresh);
    }
    std::copy(o.begin(), o.end(), data_);
    return *this;
  }
  ZeroPages& operator=(ZeroPages&& o) noexcept {
    ZeroPages taken(std::move(o));
    swap(taken);
    return *this;
  }
  ~ZeroPages() { unmap_zero_pages(data_, size_ * sizeof(T)); }
  void swap(ZeroPages& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  bool operator==(const ZeroPages& o) const { return size_ == o.size_ && std::equal(begin(), end(), o.begin()); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wafer
