// serve/metrics.h: the server's counters and latency histograms, rendered as Prometheus text
// (GET /metrics). Thread-safe: handlers and the scheduler record, the endpoint reads.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace wafer::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds in seconds, ascending; +Inf added
  void observe(double seconds);
  // `name`_bucket{le=...}, `name`_sum, `name`_count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // [bounds + 1], cumulative when rendered
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Metrics {
  std::atomic<int64_t> requests{0};         // HTTP requests to the completion endpoints
  std::atomic<int64_t> requests_failed{0};  // of which answered with an error status
  std::atomic<int64_t> prompt_tokens{0};    // tokens run through prefill
  std::atomic<int64_t> generated_tokens{0};
  std::atomic<int64_t> steps{0};            // batched forward steps
  std::atomic<int64_t> cancelled{0};        // sequences ended early (client gone, stop string)
  Histogram ttft{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram itl{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  // The whole exposition; queue/busy/slots are sampled by the caller.
  std::string render(int64_t queued, int64_t busy, int64_t slots) const;
};

}  // namespace wafer::serve
