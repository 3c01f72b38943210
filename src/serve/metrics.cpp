// serve/metrics.cpp: Prometheus text exposition format 0.0.4, written by hand (a few lines).
#include "serve/metrics.h"

#include <cstdio>

namespace wafer::serve {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i], ++count_, sum_ += seconds;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string s = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  char buf[128];
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    if (i < bounds_.size())
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i], (unsigned long long)cum);
    else
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(), (unsigned long long)cum);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "%s_sum %.9g\n%s_count %llu\n", name.c_str(), sum_, name.c_str(),
                (unsigned long long)count_);
  return s + buf;
}

namespace {
std::string metric(const char* name, const char* type, const char* help, double v) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
  return buf;
}
}  // namespace

std::string Metrics::render(int64_t queued, int64_t busy, int64_t slots) const {
  std::string s;
  s += metric("wafer_requests_total", "counter", "Completion requests received", double(requests.load()));
  s += metric("wafer_requests_failed_total", "counter", "Completion requests answered with an error",
              double(requests_failed.load()));
  s += metric("wafer_prompt_tokens_total", "counter", "Prompt tokens processed (tokens in)", double(prompt_tokens.load()));
  s += metric("wafer_generated_tokens_total", "counter", "Tokens generated (tokens out)", double(generated_tokens.load()));
  s += metric("wafer_steps_total", "counter", "Batched forward steps", double(steps.load()));
  s += metric("wafer_sequences_cancelled_total", "counter",
              "Sequences ended before their end (client disconnected, stop string matched)", double(cancelled.load()));
  s += metric("wafer_queue_length", "gauge", "Sequences waiting for a slot", double(queued));
  s += metric("wafer_busy_slots", "gauge", "Slots holding an active sequence", double(busy));
  s += metric("wafer_slots", "gauge", "Slots (sequences decoded together)", double(slots));
  s += ttft.render("wafer_time_to_first_token_seconds", "Time from a request's arrival to its first token");
  s += itl.render("wafer_inter_token_latency_seconds", "Time between consecutive tokens of a sequence");
  return s;
}

}  // namespace wafer::serve
