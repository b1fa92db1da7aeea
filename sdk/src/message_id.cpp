#include <workflow/host.hpp>

#include <chrono>
#include <cstdint>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

namespace workflow::host {

std::string NewMessageId() {
  // One generator per thread, seeded once from the OS.
  thread_local boost::uuids::random_generator_mt19937 generator;
  boost::uuids::uuid id = generator();
  // UUIDv7: the first 48 bits are the Unix time in milliseconds, big-endian; then the version
  // (7) in the high nibble of byte 6. The generator already set the variant bits (byte 8).
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto ms = static_cast<std::uint64_t>(now);
  for (int i = 0; i < 6; ++i) id.data[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  id.data[6] = static_cast<std::uint8_t>(0x70 | (id.data[6] & 0x0f));
  return boost::uuids::to_string(id);
}

}  // namespace workflow::host
