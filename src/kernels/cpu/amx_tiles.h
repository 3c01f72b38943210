// kernels/cpu/amx_tiles.h: the AMX tile configuration (palette 1, 64 bytes) that the tile kernels
// (rows_matmul_amx.cpp, quant_matmul_amx.cpp) load with _tile_loadconfig on each thread before
// they touch a tile: the configuration is per thread, and oneDNN's GEMMs load their own.
#pragma once
#include <cstdint>

namespace wafer {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of each tile
  uint8_t rows[16] = {};    // rows of each tile
  void shape(int tile, int n_rows, int bytes_per_row) {
    rows[tile] = uint8_t(n_rows), colsb[tile] = uint16_t(bytes_per_row);
  }
};
static_assert(sizeof(TileConfig) == 64);

}  // namespace wafer
