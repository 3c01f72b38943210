// core/zero_pages.cpp: the anonymous mappings behind ZeroPages.
#include "core/zero_pages.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace wafer {

void* map_zero_pages(size_t bytes) {
  if (bytes == 0) return nullptr;
  // MAP_NORESERVE: a model larger than RAM plus swap whose untouched pages are never written is
  // a normal case here (quantized inference), so do not refuse it for want of commit charge.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  WAFER_CHECK(p != MAP_FAILED, "[memory] cannot reserve ", bytes, " bytes of address space: ", std::strerror(errno));
  // Small pages only. Where transparent huge pages are "always" (a common kernel default), the
  // first write into each 2 MB of the mapping commits all 2 MB: a quantized model's biases and
  // layer norms, a few KB between matrices that are never written, would commit about as much
  // as the matrices themselves. Advice only; a kernel without THP ignores it.
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  return p;
}

void unmap_zero_pages(void* p, size_t bytes) {
  if (p) ::munmap(p, bytes);
}

}  // namespace wafer
