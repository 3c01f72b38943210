// io/torch_bin.cpp: the pickle subset behind torch.save state dicts.
//
// A state dict pickles as REDUCE(OrderedDict, ()) followed by SETITEMS of
// key -> REDUCE(torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, requires_grad,
// hooks)), where `storage` is a persistent id ('storage', torch.FloatStorage, key, location,
// numel) resolved to the archive entry <prefix>/data/<key>.
#include "io/torch_bin.h"

#include <cstring>
#include <deque>
#include <unordered_map>

#include "core/error.h"

namespace wafer {

namespace {

// Objects live in the Unpickler's arena and point at each other with plain pointers: a pickle may
// build cycles (a list appended to itself through the memo), which reference counts would leak.
struct PyObj;
using PyPtr = PyObj*;

struct PyObj {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, Opaque };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                                // Str/Bytes; Global "module.name"; Storage key
  std::vector<PyPtr> items;                     // Tuple, List
  std::vector<std::pair<PyPtr, PyPtr>> dict;    // Dict, in insertion order
  DType dtype = DType::F32;                     // Storage, Tensor
  PyPtr storage;                                // Tensor
  int64_t offset = 0;                           // Tensor, in elements
  std::vector<int64_t> shape, stride;           // Tensor
};

bool storage_dtype(const std::string& global, DType* out) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"torch.FloatStorage", DType::F32},   {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64},  {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},   {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::BOOL},
  };
  for (const auto& [name, t] : kTypes)
    if (global == name) {
      *out = t;
      return true;
    }
  return false;
}

class Unpickler {
 public:
  Unpickler(std::string_view data, const std::string& where) : d_(data), where_(where) {}

  PyPtr run() {
    while (true) {
      uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                                  // PROTO
        case 0x95: take(8); break;                                 // FRAME
        case '}': push(make(PyObj::Kind::Dict)); break;            // EMPTY_DICT
        case ']': push(make(PyObj::Kind::List)); break;            // EMPTY_LIST
        case ')': push(make(PyObj::Kind::Tuple)); break;           // EMPTY_TUPLE
        case '(': marks_.push_back(stack_.size()); break;          // MARK
        case 'N': push(make(PyObj::Kind::None)); break;
        case 0x88: case 0x89: {                                    // NEWTRUE, NEWFALSE
          auto b = make(PyObj::Kind::Bool);
          b->i = op == 0x88;
          push(b);
          break;
        }
        case 'K': push_int(byte()); break;                         // BININT1
        case 'M': push_int(u16()); break;                          // BININT2
        case 'J': push_int(int32_t(u32())); break;                 // BININT
        case 0x8a: {                                               // LONG1
          uint8_t n = byte();
          check(n <= 8, "LONG1 wider than 64 bits");
          const char* p = take(n);
          int64_t v = 0;
          for (int k = 0; k < n; ++k) v |= int64_t(uint8_t(p[k])) << (8 * k);
          if (n > 0 && n < 8 && (uint8_t(p[n - 1]) & 0x80)) v -= int64_t(1) << (8 * n);
          push_int(v);
          break;
        }
        case 'G': {                                                // BINFLOAT (big-endian)
          const char* p = take(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = u << 8 | uint8_t(p[k]);
          auto f = make(PyObj::Kind::Float);
          std::memcpy(&f->f, &u, 8);
          push(f);
          break;
        }
        case 'X': push_str(u32(), PyObj::Kind::Str); break;        // BINUNICODE
        case 0x8c: push_str(byte(), PyObj::Kind::Str); break;      // SHORT_BINUNICODE
        case 'B': push_str(u32(), PyObj::Kind::Bytes); break;      // BINBYTES
        case 'C': push_str(byte(), PyObj::Kind::Bytes); break;     // SHORT_BINBYTES
        case 'q': memo_put(byte()); break;                         // BINPUT
        case 'r': memo_put(u32()); break;                          // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;                  // MEMOIZE
        case 'h': memo_get(byte()); break;                         // BINGET
        case 'j': memo_get(u32()); break;                          // LONG_BINGET
        case 'c': {                                                // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          auto g = make(PyObj::Kind::Global);
          g->s = module + "." + name;
          push(g);
          break;
        }
        case 0x93: {                                               // STACK_GLOBAL
          PyPtr name = pop(), module = pop();
          check(name->kind == PyObj::Kind::Str && module->kind == PyObj::Kind::Str, "STACK_GLOBAL needs two strings");
          auto g = make(PyObj::Kind::Global);
          g->s = module->s + "." + name->s;
          push(g);
          break;
        }
        case 't': {                                                // TUPLE
          auto t = make(PyObj::Kind::Tuple);
          t->items = pop_to_mark();
          push(t);
          break;
        }
        case 0x85: case 0x86: case 0x87: {                         // TUPLE1..3
          auto t = make(PyObj::Kind::Tuple);
          t->items.resize(op - 0x84);
          for (size_t k = t->items.size(); k-- > 0;) t->items[k] = pop();
          push(t);
          break;
        }
        case 'a': {                                                // APPEND
          PyPtr v = pop();
          list_top()->items.push_back(v);
          break;
        }
        case 'e': {                                                // APPENDS
          auto vs = pop_to_mark();
          auto l = list_top();
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {                                                // SETITEM
          PyPtr v = pop(), k = pop();
          dict_top()->dict.emplace_back(k, v);
          break;
        }
        case 'u': {                                                // SETITEMS
          auto kv = pop_to_mark();
          check(kv.size() % 2 == 0, "SETITEMS with an odd number of items");
          auto dct = dict_top();
          for (size_t k = 0; k < kv.size(); k += 2) dct->dict.emplace_back(kv[k], kv[k + 1]);
          break;
        }
        case 'Q': push(persistent_load(pop())); break;             // BINPERSID
        case 'R': {                                                // REDUCE
          PyPtr args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': pop(); break;                                    // BUILD: object state (e.g. _metadata), unused
        case '.':                                                  // STOP
          check(!stack_.empty(), "STOP with an empty stack");
          return stack_.back();
        default:
          fail(str_cat("[pickle] ", where_, ": unsupported or corrupt opcode 0x", std::hex, int(op), std::dec,
                       " at byte ", pos_ - 1, " (expected a state dict written by torch.save)"));
      }
    }
  }

 private:
  void check(bool ok, const char* what) {
    if (!ok) fail(str_cat("[pickle] ", where_, ": ", what, " at byte ", pos_, " (corrupt pickle?)"));
  }
  const char* take(size_t n) {
    check(pos_ + n <= d_.size(), "unexpected end of data");
    const char* p = d_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint8_t byte() { return uint8_t(*take(1)); }
  uint16_t u16() {
    const char* p = take(2);
    return uint16_t(uint8_t(p[0]) | uint8_t(p[1]) << 8);
  }
  uint32_t u32() {
    const char* p = take(4);
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  std::string line() {
    size_t nl = d_.find('\n', pos_);
    check(nl != std::string_view::npos, "unterminated GLOBAL");
    std::string s(d_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }
  void push(PyPtr p) { stack_.push_back(std::move(p)); }
  PyPtr pop() {
    check(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "stack underflow");
    PyPtr p = stack_.back();
    stack_.pop_back();
    return p;
  }
  void push_int(int64_t v) {
    auto p = make(PyObj::Kind::Int);
    p->i = v;
    push(p);
  }
  void push_str(size_t n, PyObj::Kind k) {
    auto p = make(k);
    p->s = std::string(take(n), n);
    push(p);
  }
  std::vector<PyPtr> pop_to_mark() {
    check(!marks_.empty(), "no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyPtr> v(stack_.begin() + long(m), stack_.end());
    stack_.resize(m);
    return v;
  }
  PyPtr list_top() {
    check(!stack_.empty() && stack_.back()->kind == PyObj::Kind::List, "APPEND to something not a list");
    return stack_.back();
  }
  PyPtr dict_top() {
    check(!stack_.empty() && stack_.back()->kind == PyObj::Kind::Dict, "SETITEM on something not a dict");
    return stack_.back();
  }
  void memo_put(size_t k) {
    check(!stack_.empty(), "memo PUT with an empty stack");
    memo_[k] = stack_.back();
  }
  void memo_get(size_t k) {
    auto it = memo_.find(k);
    check(it != memo_.end(), "memo GET of an unknown key");
    push(it->second);
  }
  PyPtr persistent_load(const PyPtr& pid) {
    check(pid->kind == PyObj::Kind::Tuple && pid->items.size() >= 5 && pid->items[0]->kind == PyObj::Kind::Str &&
              pid->items[0]->s == "storage" && pid->items[1]->kind == PyObj::Kind::Global &&
              pid->items[2]->kind == PyObj::Kind::Str && pid->items[4]->kind == PyObj::Kind::Int,
          "persistent id is not ('storage', type, key, location, numel)");
    auto st = make(PyObj::Kind::Storage);
    if (!storage_dtype(pid->items[1]->s, &st->dtype))
      fail(str_cat("[pickle] ", where_, ": unsupported storage type ", pid->items[1]->s));
    st->s = pid->items[2]->s;
    st->i = pid->items[4]->i;
    return st;
  }
  std::vector<int64_t> int_tuple(const PyPtr& t) {
    check(t->kind == PyObj::Kind::Tuple, "expected a tuple of ints");
    std::vector<int64_t> v;
    for (const auto& x : t->items) {
      check(x->kind == PyObj::Kind::Int && x->i >= 0, "expected a tuple of non-negative ints");
      v.push_back(x->i);
    }
    return v;
  }
  PyPtr reduce(const PyPtr& fn, const PyPtr& args) {
    check(args->kind == PyObj::Kind::Tuple, "REDUCE arguments are not a tuple");
    const std::string name = fn->kind == PyObj::Kind::Global ? fn->s : "";
    if (name == "collections.OrderedDict") return make(PyObj::Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      const auto& a = args->items;
      check(a.size() >= 4 && a[0]->kind == PyObj::Kind::Storage && a[1]->kind == PyObj::Kind::Int,
            "_rebuild_tensor_v2 expects (storage, offset, size, stride, ...)");
      auto t = make(PyObj::Kind::Tensor);
      t->storage = a[0];
      t->dtype = a[0]->dtype;
      t->offset = a[1]->i;
      t->shape = int_tuple(a[2]);
      t->stride = int_tuple(a[3]);
      check(t->shape.size() == t->stride.size(), "tensor size and stride differ in length");
      return t;
    }
    if (name == "torch._utils._rebuild_parameter") {
      check(!args->items.empty() && args->items[0]->kind == PyObj::Kind::Tensor, "_rebuild_parameter without a tensor");
      return args->items[0];
    }
    return make(PyObj::Kind::Opaque);  // something a state dict does not need; ignored unless used as a tensor
  }

  PyPtr make(PyObj::Kind k) {
    PyObj& p = arena_.emplace_back();
    p.kind = k;
    return &p;
  }

  std::string_view d_;
  std::string where_;
  size_t pos_ = 0;
  std::deque<PyObj> arena_;  // every object the pickle built; a deque keeps their addresses fixed
  std::vector<PyPtr> stack_;
  std::unordered_map<size_t, PyPtr> memo_;  // a dict, as in Python: LONG_BINPUT may name any key
  std::vector<size_t> marks_;
};

}  // namespace

TorchBinFile::TorchBinFile(const std::string& path) : TorchBinFile(std::make_unique<MappedFile>(path)) {}

TorchBinFile::TorchBinFile(std::unique_ptr<MappedFile> file) {
  const std::string path = file->path();
  WAFER_CHECK(file->size() >= 4 && std::memcmp(file->data(), "PK\x03\x04", 4) == 0, "[torch] ", path,
              ": expected a ZIP archive (torch.save since PyTorch 1.6), found other bytes; re-save the state dict "
              "with a newer torch or convert it to safetensors");
  zip_ = std::make_unique<ZipArchive>(std::move(file));
  std::string pkl;
  for (const auto& n : zip_->names())
    if (n.size() >= 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0 && n.find('/') == n.size() - 9) pkl = n;
  WAFER_CHECK(!pkl.empty(), "[torch] ", path, ": no <name>/data.pkl entry; not a torch.save archive");
  const std::string prefix = pkl.substr(0, pkl.size() - 8);  // "archive/"
  Unpickler unpickler(zip_->read(pkl), path + ":" + pkl);  // owns every object `root` reaches
  PyPtr root = unpickler.run();
  WAFER_CHECK(root->kind == PyObj::Kind::Dict, "[torch] ", path, ": expected a state dict (a dict of tensors) at the top");
  for (const auto& [k, v] : root->dict) {
    if (k->kind != PyObj::Kind::Str || v->kind != PyObj::Kind::Tensor) continue;
    const std::string& name = k->s;
    const size_t es = dtype_size(v->dtype);
    std::string_view bytes = zip_->read(prefix + "data/" + v->storage->s);
    // Storage bytes the view reaches, (offset + Σ (size - 1) · stride + 1) · es, each step checked:
    // the numbers come from the file and must not wrap into a small, passing value.
    WAFER_CHECK(v->offset >= 0, "[torch] ", path, ": tensor '", name, "' has storage offset ", v->offset,
                ", expected >= 0 (corrupt file?)");
    uint64_t nbytes = 0, needed = 0;
    bool fits = shape_nbytes(v->shape, es, &nbytes);
    if (fits && nbytes > 0) {
      uint64_t last = uint64_t(v->offset), term = 0;
      for (size_t d = 0; d < v->shape.size() && fits; ++d)
        fits = !__builtin_mul_overflow(uint64_t(v->shape[d] - 1), uint64_t(v->stride[d]), &term) &&
               !__builtin_add_overflow(last, term, &last);
      fits = fits && !__builtin_add_overflow(last, uint64_t(1), &last) && !__builtin_mul_overflow(last, es, &needed);
    }
    WAFER_CHECK(fits && needed <= bytes.size(), "[torch] ", path, ": tensor '", name, "' ", shape_str(v->shape),
                " at offset ", v->offset, " needs ", fits ? std::to_string(needed) : std::string("more than 2^64"),
                " bytes of storage ", v->storage->s, ", which has ", bytes.size(), " (corrupt file?)");
    // A view with more elements than its storage (stride 0, overlapping strides) would be copied
    // out at its full size; state dicts hold materialised tensors.
    WAFER_CHECK(nbytes <= bytes.size(), "[torch] ", path, ": tensor '", name, "' ", shape_str(v->shape), " is ",
                nbytes, " bytes, more than its storage's ", bytes.size(),
                " (an expanded or overlapping view); save tensor.contiguous() instead");
    const int64_t numel = int64_t(nbytes / es);
    TensorRef ref;
    ref.name = name;
    ref.dtype = v->dtype;
    ref.shape = v->shape;
    ref.file = path;
    ref.nbytes = size_t(nbytes);
    bool contiguous = true;  // an empty tensor is, whatever its strides and offset say
    int64_t expect = 1;
    for (size_t d = v->shape.size(); numel > 0 && d-- > 0;) {
      if (v->shape[d] != 1 && v->stride[d] != expect) contiguous = false;
      expect *= v->shape[d];
    }
    const char* base = bytes.data() + (numel > 0 ? size_t(v->offset) * es : 0);
    if (contiguous) {
      ref.data = reinterpret_cast<const uint8_t*>(base);
    } else {  // gather a strided view into a contiguous copy
      std::string& copy = copies_.emplace_back(ref.nbytes, '\0');
      std::vector<int64_t> idx(v->shape.size(), 0);
      for (int64_t e = 0; e < numel; ++e) {
        int64_t src = 0;
        for (size_t d = 0; d < idx.size(); ++d) src += idx[d] * v->stride[d];
        std::memcpy(copy.data() + size_t(e) * es, base + size_t(src) * es, es);
        for (size_t d = idx.size(); d-- > 0;) {
          if (++idx[d] < v->shape[d]) break;
          idx[d] = 0;
        }
      }
      ref.data = reinterpret_cast<const uint8_t*>(copy.data());
    }
    tensors_.emplace(name, std::move(ref));
  }
}

}  // namespace wafer
