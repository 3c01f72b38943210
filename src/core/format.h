// core/format.h: numbers as people read them in messages, titles and tables.
#pragma once
#include <cstdint>
#include <string>

namespace wafer {

// A count with three significant digits and a K/M/B/T suffix: 20293376 -> "20.3M",
// 111050496 -> "111M", 1315950592 -> "1.32B", 950 -> "950".
std::string human_count(double n);

}  // namespace wafer
