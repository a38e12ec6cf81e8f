// convc native harness: the accelerator's Verilog (verilated as Vtop) with its whole
// external memory (an AXI4 slave on m_axi) and its host (an AXI4-Lite master on s_axil).
//
// Python (convc/sim/native.py) writes a run folder and starts this program once for all
// images; no Python runs per clock.  Files (all little-endian):
//
//   config.txt   "key value" lines (see Config below)
//   memory.bin   the initial memory, 16-bit words from word 0 (weights.bin, the
//                schedule at sched_addr); the memory is memory_words words
//   inputs.bin   images x input_words words: each image's quantized input codes
//   words.bin    (written) per finished image, every region's words, in region order
//   results.txt  (written) one line per finished image, per record start, and the end:
//                  image K cycles C records R status S sim_cycles T seconds W
//                  starts K s0 s1 ...      cycle (CYCLES count) of each record's start
//                  error KIND image K ...  (a run that stopped; see fail())
//                  end ok | end error
//
// stdout: one "progress ..." line per finished image (and one every few seconds of a
// long image), read by the Python side for its progress messages.
//
// Timing of the memory (the cycle model's MemoryTiming, convc/sim/cycle.py):
//   ar_to_r          an AR handshake at cycle t makes its first R beat valid at t + ar_to_r
//   w_to_b           a burst's last W beat (and its AW) at t: B valid at t + w_to_b
//   beats_per_cycle  sustained beats a cycle (a token bucket holding at most bucket_beats);
//                    duplex 1: reads and writes each have it,
//                    duplex 0: they share it (a token bucket of one beat)
// Read bursts are served in AR order, back to back, one beat a cycle at most; B in the
// order the bursts completed.  With a seed (backpressure on), ARREADY, AWREADY and WREADY
// drop at random, R and B are delayed at random (per burst and per beat), and read data
// and write responses of different IDs are interleaved/reordered (AXI allows it; the
// order within one ID is kept).
//
// Host: AXI4-Lite writes of SCHED_ADDR, IMAGE_ADDR and CTRL = 1, then wait for irq (or a
// STATUS poll every poll_cycles), read STATUS, CYCLES_LO/HI and RECORDS.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "verilated.h"
#include "Vtop.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC TraceFile;
#define CONVC_TRACE 1
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TraceFile;
#define CONVC_TRACE 1
#endif

#define P(name) top->name
// Verilator spells a double underscore in a port name as ___05F
#define AXI(name) m_axi___05F##name
#define AXIL(name) s_axil___05F##name

static const int RESET_CYCLES = 5;

struct Config {
    std::string folder;
    uint64_t memory_words = 0;
    uint64_t sched_addr = 0, image_addr = 0, input_addr = 0, input_words = 0;
    int images = 0;
    std::vector<std::pair<uint64_t, uint64_t>> regions;  // (addr, words)
    long poison = -1;
    uint64_t max_cycles = 1000000;
    uint64_t poll_cycles = 256;
    int ar_to_r = 2, w_to_b = 1;
    double beats_per_cycle = 1.0;
    double bucket_beats = 2.0;
    int duplex = 1;
    uint64_t seed = 0;               // 0: no backpressure
    double p_stall = 0.3;            // ARREADY/AWREADY/WREADY low, R/B beat held back
    int max_delay = 24;              // extra cycles of latency per burst, at most
    std::string trace;               // FST file of trace_image ("" : none)
    int trace_image = 0;
    int trace_depth = 99;            // hierarchy levels in the waveform
    double progress_seconds = 5.0;
    // the host registers and STATUS bits (hdl/regs.py, given by the Python side)
    uint32_t reg_ctrl = 0, reg_status = 0, reg_sched = 0, reg_image = 0;
    uint32_t reg_cycles_lo = 0, reg_cycles_hi = 0, reg_records = 0;
    uint32_t st_done = 0, st_error = 0;
};

static Config cfg;
static std::unique_ptr<Vtop> top;
static std::vector<uint8_t> mem;     // the whole memory, bytes
static uint64_t cycle = 0;           // clock cycles since the harness started
static std::mt19937_64 rng;
static FILE* results = nullptr;
static FILE* words_out = nullptr;
static int cur_image = -1;
static int64_t cur_record = -1;      // index of the record in progress (trace port)
#ifdef CONVC_TRACE
static TraceFile* tfp = nullptr;
#endif

static double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }
static bool chance(double p) { return cfg.seed && uniform() < p; }
static int delay() {
    return cfg.seed ? (int)std::uniform_int_distribution<int>(0, cfg.max_delay)(rng) : 0;
}

static std::chrono::steady_clock::time_point wall0;
static uint64_t reads_beats = 0, writes_beats = 0;

static void finish(bool ok) {
    if (results) {
        double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
        fprintf(results, "total cycles %llu seconds %.6f read_beats %llu write_beats %llu\n",
                (unsigned long long)cycle, total, (unsigned long long)reads_beats,
                (unsigned long long)writes_beats);
        fprintf(results, "end %s\n", ok ? "ok" : "error");
        fclose(results);
        results = nullptr;
    }
    if (words_out) {
        fclose(words_out);
        words_out = nullptr;
    }
#ifdef CONVC_TRACE
    if (tfp) {
        tfp->close();
        tfp = nullptr;
    }
#endif
    if (top) {
        top->final();
        top.reset();   // before the static destructors: Verilator's context goes with them
    }
    fflush(stdout);
    std::exit(ok ? 0 : 1);
}

// A run that cannot go on: one "error" line, then exit 1.  ``what`` is the rest of the line.
static void fail(const char* kind, const std::string& what) {
    if (results) {
        fprintf(results, "error %s image %d record %lld cycle %llu %s\n", kind, cur_image,
                (long long)cur_record, (unsigned long long)cycle, what.c_str());
    }
    fprintf(stderr, "convc harness: %s (image %d, record %lld): %s\n", kind, cur_image,
            (long long)cur_record, what.c_str());
    finish(false);
}

static void usage_fail(const std::string& msg) {
    fprintf(stderr, "convc harness: %s\n", msg.c_str());
    std::exit(2);
}

// ---- configuration and files ------------------------------------------------------------
static void read_config(const std::string& path) {
    std::ifstream f(path);
    if (!f) usage_fail("cannot read " + path);
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string key;
        if (!(in >> key) || key[0] == '#') continue;
        if (key == "memory_words") in >> cfg.memory_words;
        else if (key == "sched_addr") in >> cfg.sched_addr;
        else if (key == "image_addr") in >> cfg.image_addr;
        else if (key == "input_addr") in >> cfg.input_addr;
        else if (key == "input_words") in >> cfg.input_words;
        else if (key == "images") in >> cfg.images;
        else if (key == "region") {
            uint64_t a, n;
            in >> a >> n;
            cfg.regions.emplace_back(a, n);
        }
        else if (key == "poison") in >> cfg.poison;
        else if (key == "max_cycles") in >> cfg.max_cycles;
        else if (key == "poll_cycles") in >> cfg.poll_cycles;
        else if (key == "ar_to_r") in >> cfg.ar_to_r;
        else if (key == "w_to_b") in >> cfg.w_to_b;
        else if (key == "beats_per_cycle") in >> cfg.beats_per_cycle;
        else if (key == "bucket_beats") in >> cfg.bucket_beats;
        else if (key == "duplex") in >> cfg.duplex;
        else if (key == "seed") in >> cfg.seed;
        else if (key == "p_stall") in >> cfg.p_stall;
        else if (key == "max_delay") in >> cfg.max_delay;
        else if (key == "trace") in >> cfg.trace;
        else if (key == "trace_image") in >> cfg.trace_image;
        else if (key == "trace_depth") in >> cfg.trace_depth;
        else if (key == "progress_seconds") in >> cfg.progress_seconds;
        else if (key == "reg_ctrl") in >> cfg.reg_ctrl;
        else if (key == "reg_status") in >> cfg.reg_status;
        else if (key == "reg_sched_addr") in >> cfg.reg_sched;
        else if (key == "reg_image_addr") in >> cfg.reg_image;
        else if (key == "reg_cycles_lo") in >> cfg.reg_cycles_lo;
        else if (key == "reg_cycles_hi") in >> cfg.reg_cycles_hi;
        else if (key == "reg_records") in >> cfg.reg_records;
        else if (key == "status_done") in >> cfg.st_done;
        else if (key == "status_error") in >> cfg.st_error;
        else usage_fail("config: unknown key " + key);
        if (in.fail()) usage_fail("config: bad value for " + key);
    }
    if (cfg.memory_words == 0) usage_fail("config: memory_words missing");
    if (!cfg.st_done || !cfg.st_error || cfg.reg_status == cfg.reg_ctrl)
        usage_fail("config: the host registers and STATUS bits are missing");
    if (cfg.ar_to_r < 1 || cfg.w_to_b < 1) usage_fail("config: latencies must be >= 1");
    if (!(cfg.beats_per_cycle > 0)) usage_fail("config: beats_per_cycle must be > 0");
    if (!(cfg.bucket_beats >= 1)) usage_fail("config: bucket_beats must be >= 1");
}

static std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) usage_fail("cannot read " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// ---- ports of any width: Verilator holds them as CData..QData or VlWide (32-bit words) -----
template <typename T> static inline void port_from(T& port, const uint8_t* src, size_t n) {
    std::memcpy((void*)&port, src, n);
}
template <typename T> static inline void port_to(const T& port, uint8_t* dst, size_t n) {
    std::memcpy(dst, (const void*)&port, n);
}
template <typename T> static inline uint64_t port_u64(const T& port) {
    uint64_t v = 0;
    std::memcpy(&v, (const void*)&port, sizeof(T) < 8 ? sizeof(T) : 8);
    return v;
}

static size_t data_bytes() { return sizeof(top->AXI(rdata)); }

// ---- the clock ------------------------------------------------------------------------------
// The harness's inputs for a cycle are set from its state before the edge; after the
// falling-edge evaluation both sides' handshake signals are settled and sampled; then
// the rising edge.
static void eval_low() {
    top->clk = 0;
    top->eval();
#ifdef CONVC_TRACE
    if (tfp) tfp->dump((uint64_t)(2 * cycle));
#endif
}
static void eval_high() {
    top->clk = 1;
    top->eval();
#ifdef CONVC_TRACE
    if (tfp) tfp->dump((uint64_t)(2 * cycle + 1));
#endif
    cycle++;
}

// ---- the memory: AXI4 slave -----------------------------------------------------------------
struct Burst {
    uint32_t id;
    uint64_t beat;     // beat address (byte address / data_bytes)
    uint32_t beats;
    uint32_t done = 0;
    uint64_t ready;    // cycle from which the next beat may go out
};

struct WBeat {
    std::vector<uint8_t> data;
    uint64_t strb;
    bool last;
    uint64_t at;
};

struct Resp {
    uint32_t id;
    uint64_t ready;
};

class Memory {
  public:
    std::deque<Burst> reads;         // AR order
    std::deque<Burst> writes;        // AW order, waiting for W beats
    std::deque<WBeat> wdata;         // W beats not yet matched to an AW
    std::deque<Resp> bresp;          // completed bursts, completion order
    bool r_hold = false;             // a beat is presented (held until rready)
    size_t r_idx = 0;                // which burst it belongs to
    bool b_hold = false;
    size_t b_idx = 0;
    double tok_r = 0, tok_w = 0;     // bandwidth tokens (tok_r is the shared bucket if !duplex)
    bool rr_prio = true;             // shared bucket: reads go first when both want it
    bool ar_rdy = true, aw_rdy = true, w_rdy = true;
    bool w_grant = true;

    void check_range(const char* what, uint64_t addr, uint32_t len, uint32_t size, uint32_t burst,
                     uint32_t id) {
        size_t nb = data_bytes();
        uint64_t bytes = (uint64_t)(len + 1) << size;
        char buf[400];
        if ((1u << size) != nb || burst != 1) {
            snprintf(buf, sizeof buf,
                     "AXI %s burst (ID %u) at byte address 0x%llx: size %u, burst type %u; the "
                     "harness takes INCR bursts of full %zu-byte beats",
                     what, id, (unsigned long long)addr, 1u << size, burst, nb);
            fail("axi", buf);
        }
        if (addr % nb) {
            snprintf(buf, sizeof buf, "AXI %s burst (ID %u) at byte address 0x%llx is not aligned to "
                     "the %zu-byte beat", what, id, (unsigned long long)addr, nb);
            fail("axi", buf);
        }
        if ((addr & 0xFFF) + bytes > 0x1000) {
            snprintf(buf, sizeof buf, "AXI %s burst (ID %u) at byte address 0x%llx, %u beats, "
                     "crosses a 4 KB boundary", what, id, (unsigned long long)addr, len + 1);
            fail("axi", buf);
        }
        if (addr + bytes > mem.size()) {
            snprintf(buf, sizeof buf,
                     "AXI %s burst (ID %u) at byte address 0x%llx (word 0x%llx), %u beats, outside "
                     "the memory image (%llu words, word addresses 0..0x%llx)",
                     what, id, (unsigned long long)addr, (unsigned long long)(addr / 2), len + 1,
                     (unsigned long long)(mem.size() / 2), (unsigned long long)(mem.size() / 2 - 1));
            fail("address", buf);
        }
    }

    // Inputs for this cycle, from the state (before the falling-edge evaluation).
    void drive() {
        // bandwidth tokens: a bucket a direction (duplex) or one shared, refilled by
        // beats_per_cycle a cycle, a beat taking one (MemoryTiming.bucket_beats: the cap)
        double cap = cfg.bucket_beats;
        tok_r = std::min(tok_r + cfg.beats_per_cycle, cap);
        if (cfg.duplex) tok_w = std::min(tok_w + cfg.beats_per_cycle, cap);

        ar_rdy = !chance(cfg.p_stall);
        aw_rdy = !chance(cfg.p_stall);
        top->AXI(arready) = ar_rdy;
        top->AXI(awready) = aw_rdy;

        bool r_want = !r_hold && pick_read();
        bool r_ok, w_ok;
        if (cfg.duplex) {
            r_ok = tok_r >= 1.0;
            w_ok = tok_w >= 1.0;
        } else {
            // one bucket: when it holds a single beat and both sides want it, they take
            // turns (wvalid as the writer shows it before this cycle's inputs)
            bool w_want = top->AXI(wvalid);
            if (tok_r >= 2.0 || !(r_want && w_want)) {
                r_ok = w_ok = tok_r >= 1.0;
            } else {
                r_ok = rr_prio;
                w_ok = !rr_prio;
                rr_prio = !rr_prio;
            }
        }
        if (r_want && r_ok && !chance(cfg.p_stall)) {
            // the beat is committed: held until rready
            r_hold = true;
            Burst& b = reads[r_idx];
            size_t nb = data_bytes();
            port_from(top->AXI(rdata), &mem[(b.beat + b.done) * nb], nb);
            top->AXI(rid) = b.id;
            top->AXI(rlast) = (b.done + 1 == b.beats);
            top->AXI(rresp) = 0;
            tok_r -= 1.0;
        }
        top->AXI(rvalid) = r_hold;
        // shared bucket: a read beat may have taken the last token
        w_grant = w_ok && (cfg.duplex ? tok_w : tok_r) >= 1.0 && !chance(cfg.p_stall);
        top->AXI(wready) = w_grant;

        if (!b_hold) b_hold = pick_resp();
        if (b_hold) {
            top->AXI(bid) = bresp[b_idx].id;
            top->AXI(bresp) = 0;
        }
        top->AXI(bvalid) = b_hold;
    }

    // The burst whose beat goes out next; false if none is due.
    bool pick_read() {
        long k = pick_next(reads);
        if (k >= 0) r_idx = (size_t)k;
        return k >= 0;
    }

    bool pick_resp() {
        long k = pick_next(bresp);
        if (k < 0 || chance(cfg.p_stall)) return false;
        b_idx = (size_t)k;
        return true;
    }

    // The entry of ``q`` (AR or completion order) that goes out next, or -1: the oldest,
    // if it is due; with backpressure, the oldest due entry of any ID at random (AXI keeps
    // the order within an ID only).
    template <typename T> static long pick_next(const std::deque<T>& q) {
        if (q.empty()) return -1;
        if (!cfg.seed) return q.front().ready <= cycle ? 0 : -1;
        std::vector<size_t> cands;
        std::vector<bool> seen(256, false);     // AXI IDs are at most 8 bits here
        for (size_t k = 0; k < q.size(); k++) {
            uint32_t id = q[k].id & 255;
            if (seen[id]) continue;
            seen[id] = true;
            if (q[k].ready <= cycle) cands.push_back(k);
        }
        if (cands.empty()) return -1;
        return (long)cands[std::uniform_int_distribution<size_t>(0, cands.size() - 1)(rng)];
    }

    // Handshakes of this cycle (after the falling-edge evaluation, before the rising edge).
    void sample() {
        size_t nb = data_bytes();
        if (ar_rdy && top->AXI(arvalid)) {
            uint64_t addr = port_u64(top->AXI(araddr));
            uint32_t len = top->AXI(arlen), size = top->AXI(arsize), id = top->AXI(arid);
            check_range("read", addr, len, size, top->AXI(arburst), id);
            Burst b{id, addr / nb, len + 1, 0, cycle + (uint64_t)cfg.ar_to_r + (uint64_t)delay()};
            reads.push_back(b);
        }
        if (r_hold && top->AXI(rready)) {
            Burst& b = reads[r_idx];
            b.done++;
            reads_beats++;
            r_hold = false;
            if (b.done == b.beats) {
                reads.erase(reads.begin() + r_idx);
            } else if (cfg.seed && chance(cfg.p_stall)) {
                b.ready = cycle + 1 + (uint64_t)delay() / 4;
            }
        }
        if (aw_rdy && top->AXI(awvalid)) {
            uint64_t addr = port_u64(top->AXI(awaddr));
            uint32_t len = top->AXI(awlen), size = top->AXI(awsize), id = top->AXI(awid);
            check_range("write", addr, len, size, top->AXI(awburst), id);
            Burst b{id, addr / nb, len + 1, 0, cycle};
            writes.push_back(b);
        }
        if (w_grant && top->AXI(wvalid)) {
            WBeat w;
            w.data.resize(nb);
            port_to(top->AXI(wdata), w.data.data(), nb);
            w.strb = port_u64(top->AXI(wstrb));
            w.last = top->AXI(wlast);
            w.at = cycle;
            wdata.push_back(std::move(w));
            writes_beats++;
            if (cfg.duplex) tok_w -= 1.0;
            else tok_r -= 1.0;
        }
        // W beats go to the oldest AW (AXI4: write data in AW order, not interleaved)
        while (!wdata.empty() && !writes.empty()) {
            Burst& b = writes.front();
            WBeat& w = wdata.front();
            uint8_t* dst = &mem[(b.beat + b.done) * nb];
            for (size_t i = 0; i < nb; i++)
                if ((w.strb >> i) & 1) dst[i] = w.data[i];
            b.done++;
            bool last = b.done == b.beats;
            if (w.last != last) {
                char buf[200];
                snprintf(buf, sizeof buf, "AXI write burst (ID %u) at byte address 0x%llx: WLAST %s on "
                         "beat %u of %u", b.id, (unsigned long long)(b.beat * nb),
                         w.last ? "set" : "not set", b.done, b.beats);
                fail("axi", buf);
            }
            if (last) {
                uint64_t t = std::max(w.at, b.ready);
                bresp.push_back(Resp{b.id, t + (uint64_t)cfg.w_to_b + (uint64_t)delay()});
                writes.pop_front();
            }
            wdata.pop_front();
        }
        if (b_hold && top->AXI(bready)) {
            bresp.erase(bresp.begin() + b_idx);
            b_hold = false;
        }
    }
};

static Memory memory;

// ---- the host: AXI4-Lite master ---------------------------------------------------------------
class Host {
  public:
    enum Op { NONE, WRITE, READ } op = NONE;
    uint32_t addr = 0, data = 0;
    bool aw_done = false, w_done = false, ar_done = false;
    bool finished = false;
    uint32_t rdata = 0;

    void start_write(uint32_t a, uint32_t d) {
        op = WRITE; addr = a; data = d; aw_done = w_done = false; finished = false;
    }
    void start_read(uint32_t a) {
        op = READ; addr = a; ar_done = false; finished = false;
    }
    void drive() {
        top->AXIL(awvalid) = op == WRITE && !aw_done;
        top->AXIL(awaddr) = addr;
        top->AXIL(awprot) = 0;
        top->AXIL(wvalid) = op == WRITE && !w_done;
        top->AXIL(wdata) = data;
        top->AXIL(wstrb) = 0xF;
        top->AXIL(bready) = op == WRITE && aw_done && w_done;
        top->AXIL(arvalid) = op == READ && !ar_done;
        top->AXIL(araddr) = addr;
        top->AXIL(arprot) = 0;
        top->AXIL(rready) = op == READ && ar_done;
    }
    void check_resp(const char* what, unsigned resp) {
        if (resp != 0) {
            char buf[100];
            snprintf(buf, sizeof buf, "AXI-Lite %s of 0x%x answered resp=%u", what, addr, resp);
            fail("host", buf);
        }
    }
    void sample() {
        if (op == WRITE) {
            bool bfire = aw_done && w_done && top->AXIL(bvalid);
            if (top->AXIL(awvalid) && top->AXIL(awready)) aw_done = true;
            if (top->AXIL(wvalid) && top->AXIL(wready)) w_done = true;
            if (bfire) {
                check_resp("write", top->AXIL(bresp));
                op = NONE;
                finished = true;
            }
        } else if (op == READ) {
            bool rfire = ar_done && top->AXIL(rvalid);
            if (top->AXIL(arvalid) && top->AXIL(arready)) ar_done = true;
            if (rfire) {
                check_resp("read", top->AXIL(rresp));
                rdata = top->AXIL(rdata);
                op = NONE;
                finished = true;
            }
        }
    }
};

static Host host;

// ---- run-time record trace ---------------------------------------------------------------------
static uint64_t run_cycles = 0;          // cycles with trace.running high (the CYCLES count)
static std::vector<uint64_t> starts;     // run_cycles at each record start

static void step() {
    memory.drive();
    host.drive();
    eval_low();
    memory.sample();
    host.sample();
#ifdef CONVC_TRACE_PORTS
    if (top->trace___05Frunning) {
        if (top->trace___05Fstart) {
            starts.push_back(run_cycles);
            cur_record = (int64_t)starts.size() - 1;
        }
        run_cycles++;
    }
#endif
    eval_high();
}

// Run the clock until the host's transaction on ``a`` is answered (at most ``budget`` cycles).
static void host_wait(const char* what, uint32_t a, uint64_t budget) {
    uint64_t t0 = cycle;
    while (!host.finished) {
        step();
        if (cycle - t0 > budget) {
            char buf[100];
            snprintf(buf, sizeof buf, "AXI-Lite %s of 0x%x not answered in %llu cycles", what, a,
                     (unsigned long long)budget);
            fail("host", buf);
        }
    }
}

static void host_write(uint32_t a, uint32_t d, uint64_t budget) {
    host.start_write(a, d);
    host_wait("write", a, budget);
}

static uint32_t host_read(uint32_t a, uint64_t budget) {
    host.start_read(a);
    host_wait("read", a, budget);
    return host.rdata;
}

static void write_words(uint64_t addr, const uint16_t* w, uint64_t n) {
    std::memcpy(&mem[2 * addr], w, 2 * n);
}

int main(int argc, char** argv) {
    if (argc < 2) usage_fail("usage: harness RUN_FOLDER");
    cfg.folder = argv[1];
    read_config(cfg.folder + "/config.txt");
    rng.seed(cfg.seed);

    const char* vargs[] = {"harness"};
    Verilated::commandArgs(1, vargs);
    top.reset(new Vtop);
    size_t nb = data_bytes();

    // memory: the initial image, the rest zero, rounded up to whole beats
    std::vector<uint8_t> image = read_file(cfg.folder + "/memory.bin");
    uint64_t bytes = 2 * cfg.memory_words;
    bytes = (bytes + nb - 1) / nb * nb;
    if (image.size() > bytes) usage_fail("memory.bin is larger than memory_words");
    mem.assign(bytes, 0);
    std::memcpy(mem.data(), image.data(), image.size());
    std::vector<uint8_t> inputs = read_file(cfg.folder + "/inputs.bin");
    if (inputs.size() != 2 * cfg.input_words * (uint64_t)cfg.images) usage_fail("inputs.bin: wrong size");
    for (auto& r : cfg.regions)
        if (2 * (r.first + r.second) > mem.size()) usage_fail("a region lies outside memory_words");
    if (2 * (cfg.input_addr + cfg.input_words) > mem.size()) usage_fail("the input lies outside memory_words");

    results = fopen((cfg.folder + "/results.txt").c_str(), "w");
    words_out = fopen((cfg.folder + "/words.bin").c_str(), "wb");
    if (!results || !words_out) usage_fail("cannot write into " + cfg.folder);
    fprintf(results, "harness data_bytes %zu trace_ports %d\n", nb,
#ifdef CONVC_TRACE_PORTS
            1
#else
            0
#endif
    );
    fflush(results);

    // reset
    top->rst = 1;
    for (int k = 0; k < RESET_CYCLES; k++) step();
    top->rst = 0;
    step();

    uint64_t reg_budget = 10000;
    wall0 = std::chrono::steady_clock::now();
    for (int img = 0; img < cfg.images; img++) {
        cur_image = img;
        cur_record = -1;
#ifdef CONVC_TRACE
        if (!cfg.trace.empty() && img == cfg.trace_image) {
            Verilated::traceEverOn(true);
            tfp = new TraceFile;
            top->trace(tfp, cfg.trace_depth);
            tfp->open(cfg.trace.c_str());
        }
#endif
        if (cfg.poison >= 0) {
            std::vector<uint16_t> p;
            for (auto& r : cfg.regions) {
                p.assign(r.second, (uint16_t)cfg.poison);
                write_words(r.first, p.data(), r.second);
            }
        }
        write_words(cfg.input_addr, (const uint16_t*)&inputs[2 * cfg.input_words * img], cfg.input_words);
        host_write(cfg.reg_sched, (uint32_t)cfg.sched_addr, reg_budget);
        host_write(cfg.reg_image, (uint32_t)cfg.image_addr, reg_budget);
        starts.clear();
        run_cycles = 0;
        auto t_img = std::chrono::steady_clock::now();
        auto t_report = t_img;
        uint64_t c0 = cycle;
        host_write(cfg.reg_ctrl, 1, reg_budget);
        uint64_t next_poll = cycle + cfg.poll_cycles;
        uint32_t status = 0;
        while (true) {
            step();
            if (top->irq || cycle >= next_poll) {
                status = host_read(cfg.reg_status, reg_budget);
                next_poll = cycle + cfg.poll_cycles;
                if (status & (cfg.st_done | cfg.st_error)) break;
            }
            if (cycle - c0 > cfg.max_cycles) {
                uint32_t st = host_read(cfg.reg_status, reg_budget);
                uint32_t rec = host_read(cfg.reg_records, reg_budget);
                uint32_t lo = host_read(cfg.reg_cycles_lo, reg_budget);
                uint32_t hi = host_read(cfg.reg_cycles_hi, reg_budget);
                char buf[300];
                snprintf(buf, sizeof buf, "elapsed %llu budget %llu status %u records %u cycles %llu",
                         (unsigned long long)(cycle - c0), (unsigned long long)cfg.max_cycles, st, rec,
                         (unsigned long long)(((uint64_t)hi << 32) | lo));
                fail("timeout", buf);
            }
            if ((cycle & 0xFFFF) == 0) {
                auto now = std::chrono::steady_clock::now();
                if (std::chrono::duration<double>(now - t_report).count() > cfg.progress_seconds) {
                    t_report = now;
                    double s = std::chrono::duration<double>(now - t_img).count();
                    printf("running image %d sim_cycles %llu records %zu seconds %.3f\n", img,
                           (unsigned long long)(cycle - c0), starts.size(), s);
                    fflush(stdout);
                }
            }
        }
        uint32_t rec = host_read(cfg.reg_records, reg_budget);
        uint32_t lo = host_read(cfg.reg_cycles_lo, reg_budget);
        uint32_t hi = host_read(cfg.reg_cycles_hi, reg_budget);
        uint64_t cyc = ((uint64_t)hi << 32) | lo;
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_img).count();
        if (status & cfg.st_error) {
            char buf[300];
            snprintf(buf, sizeof buf, "elapsed %llu status %u records %u cycles %llu",
                     (unsigned long long)(cycle - c0), status, rec, (unsigned long long)cyc);
            fail("status", buf);
        }
        for (auto& r : cfg.regions) fwrite(&mem[2 * r.first], 2, r.second, words_out);
        fflush(words_out);
        fprintf(results, "image %d cycles %llu records %u status %u sim_cycles %llu seconds %.6f\n", img,
                (unsigned long long)cyc, rec, status, (unsigned long long)(cycle - c0), secs);
        fprintf(results, "starts %d", img);
        for (uint64_t s : starts) fprintf(results, " %llu", (unsigned long long)s);
        fprintf(results, "\n");
        fflush(results);
        printf("image %d cycles %llu records %u sim_cycles %llu seconds %.6f\n", img, (unsigned long long)cyc,
               rec, (unsigned long long)(cycle - c0), secs);
        fflush(stdout);
#ifdef CONVC_TRACE
        if (tfp) {
            tfp->close();
            delete tfp;
            tfp = nullptr;
        }
#endif
    }
    finish(true);
}
