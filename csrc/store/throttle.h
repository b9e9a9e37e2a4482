// A token bucket over bytes read, so one machine can emulate a store of a given bandwidth
// (7-100 Gbps). A read reserves its bytes as of when it was asked for (not when a reader
// thread got to it) and may not complete before the bucket has paid for them: completion =
// max(when the bytes actually landed, asked + debt / rate). The balance may go negative, so
// reads asked for together complete one after another at the capped rate, as on a link of
// that bandwidth; and a reader thread that starts a read late (descheduled, or busy with
// the one before) catches up at the disk's own speed instead of losing the link's time.
// burstBytes is what an idle store may deliver at once (0: none, every byte is paid for at
// the rate). A reader takes a read's
// bytes in as they arrive (arrived(): a batch once its first byte has; a link delivers the
// bytes at its rate up to the deadline), so the CPU work of reading spreads over the read,
// as a NIC's DMA would, instead of landing all at once when several reads are issued
// together; the last batch is then done by the deadline, not after it.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>

namespace kvcake::store {

class ReadThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  // bytesPerSecond <= 0: no cap.
  void configure(double bytesPerSecond, double burstBytes) {
    std::lock_guard<std::mutex> lk(m_);
    rate_ = bytesPerSecond > 0 ? bytesPerSecond : 0;
    burst_ = burstBytes > 0 ? burstBytes : 0;
    tokens_ = burst_;
    last_ = Clock::now();
  }

  // The earliest time a read of `bytes` asked for at `asked` may complete. Reads reserve in
  // the order reader threads reach them, which need not be the order they were asked in:
  // the bucket's clock never goes back, so one asked earlier but reserved later is paid for
  // from the bucket's present.
  Clock::time_point reserve(int64_t bytes, Clock::time_point asked) {
    std::lock_guard<std::mutex> lk(m_);
    if (rate_ <= 0) return asked;
    const Clock::time_point t = asked > last_ ? asked : last_;
    tokens_ += std::chrono::duration<double>(t - last_).count() * rate_;
    last_ = t;
    if (tokens_ > burst_) tokens_ = burst_;
    tokens_ -= double(bytes);
    if (tokens_ >= 0) return t;
    return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
  }

  // When a read whose reserve() gave `deadline` has all its bytes but the last `bytesLeft`.
  Clock::time_point arrived(Clock::time_point deadline, int64_t bytesLeft) const {
    std::lock_guard<std::mutex> lk(m_);
    if (rate_ <= 0 || bytesLeft <= 0) return rate_ <= 0 ? Clock::time_point::min() : deadline;
    return deadline - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(double(bytesLeft) / rate_));
  }

  double rate() const {
    std::lock_guard<std::mutex> lk(m_);
    return rate_;
  }

 private:
  mutable std::mutex m_;
  double rate_ = 0, burst_ = 0, tokens_ = 0;
  Clock::time_point last_ = Clock::now();
};

}  // namespace kvcake::store
