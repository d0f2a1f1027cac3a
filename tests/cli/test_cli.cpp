// Runs the built `tinyquant` command on files written by make_inputs and checks exit codes,
// messages and the JSON of `inspect` against values computed here with plain loops.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tinyquant/io/c_export.hpp"
#include "tinyquant/io/model_file.hpp"
#include "tinyquant/io/npy.hpp"
#include "tinyquant/io/safetensors.hpp"
#include "tinyquant/sparse.hpp"

namespace {

const std::string kData = TINYQUANT_CLI_DATA;
const std::string kExe = TINYQUANT_CLI_EXE;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs a shell command line; stderr is captured too.
Result run_shell(const std::string& line) {
  const std::string err_path = kData + "/stderr.txt";
  const std::string cmd = "(" + line + ") 2>" + err_path;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp(err_path);
  return r;
}

Result run(const std::string& args) {
  return run_shell(kExe + " " + args);
}

nlohmann::json inspect_json(const std::string& model, const std::string& extra = "") {
  const Result r = run("inspect " + model + " --json " + extra);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

const nlohmann::json& tensor(const nlohmann::json& j, const std::string& name) {
  for (const nlohmann::json& t : j["tensors"])
    if (t["name"] == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  static const nlohmann::json kNull;
  return kNull;
}

std::vector<float> fc_weights() {
  return tinyquant::io::load_npy(kData + "/fc.npy").as<float>();
}

TEST(Cli, QuantizeNpyPerChannelInt4ReportsBitsShapeAndError) {
  const std::string out = kData + "/fc4.tqm";
  const Result q = run("quantize " + kData + "/fc.npy " + out + " --bits 4");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.out.find("fc "), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("SQNR"), std::string::npos) << q.out;

  const nlohmann::json j = inspect_json(out, "--reference " + kData + "/fc.npy");
  ASSERT_EQ(j["tensors"].size(), 1u);
  const nlohmann::json& t = j["tensors"][0];
  EXPECT_EQ(t["name"], "fc");  // the file stem
  EXPECT_EQ(t["storage"], "int4");
  EXPECT_EQ(t["bits"], 4);
  EXPECT_EQ(t["scheme"], "symmetric");
  EXPECT_EQ(t["granularity"], "per-channel");
  EXPECT_EQ(t["shape"], (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(t["params"], 128);
  EXPECT_EQ(t["scales"], 8);
  EXPECT_GE(t["bytes"].get<int64_t>(), 64);  // 128 nibbles

  // Reference: symmetric narrow 4-bit per row, scale = max|w| / 7, round half away from zero.
  const std::vector<float> w = fc_weights();
  double se = 0.0, max_abs = 0.0;
  int64_t zeros = 0;
  for (int r = 0; r < 8; ++r) {
    float m = 0.0f;
    for (int c = 0; c < 16; ++c) m = std::max(m, std::fabs(w[r * 16 + c]));
    const float scale = m / 7.0f;
    for (int c = 0; c < 16; ++c) {
      const float x = w[r * 16 + c];
      const float qv = std::min(7.0f, std::max(-7.0f, std::round(x / scale)));
      const float d = scale * qv;
      zeros += d == 0.0f ? 1 : 0;
      se += (static_cast<double>(x) - d) * (static_cast<double>(x) - d);
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(x) - d));
    }
  }
  EXPECT_NEAR(t["error"]["mse"].get<double>(), se / 128.0, 1e-9);
  EXPECT_NEAR(t["error"]["max_abs"].get<double>(), max_abs, 1e-6);
  EXPECT_DOUBLE_EQ(t["sparsity"].get<double>(), static_cast<double>(zeros) / 128.0);
}

TEST(Cli, QuantizeSafetensorsKeepsBiasFloatAndReadsBfloat16) {
  const std::string out = kData + "/st.tqm";
  const Result q = run("quantize " + kData + "/model.safetensors " + out +
                       " --granularity tensor --scheme affine --bits 8");
  ASSERT_EQ(q.code, 0) << q.err;
  const nlohmann::json j = inspect_json(out);
  ASSERT_EQ(j["tensors"].size(), 3u);
  EXPECT_EQ(tensor(j, "fc.bias")["storage"], "float32");
  EXPECT_FALSE(tensor(j, "fc.bias").contains("bits"));
  EXPECT_EQ(tensor(j, "fc.weight")["granularity"], "per-tensor");
  EXPECT_EQ(tensor(j, "fc.weight")["scheme"], "affine");
  EXPECT_EQ(tensor(j, "emb")["shape"], (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(tensor(j, "emb")["bits"], 8);

  // The bfloat16 values, read here from the file's bytes (8-byte header length, JSON header,
  // data) and widened by hand (the high half of a float32). The reference file holds them with
  // the two float32 tensors as they are.
  std::ifstream in(kData + "/model.safetensors", std::ios::binary);
  const std::vector<char> file((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
  ASSERT_GE(file.size(), 8u);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(file[i]);
  ASSERT_LE(header_len, file.size() - 8);
  const nlohmann::json header =
      nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(header_len));
  ASSERT_EQ(header["emb"]["dtype"], "BF16");
  const size_t begin = 8 + header_len + header["emb"]["data_offsets"][0].get<size_t>();
  ASSERT_LE(begin + 48, file.size());
  std::vector<float> emb(24);
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = 0; i < emb.size(); ++i) {
    const auto byte = [&](size_t at) {
      return static_cast<uint32_t>(static_cast<uint8_t>(file[at]));
    };
    const uint32_t bits = byte(begin + 2 * i + 1) << 24 | byte(begin + 2 * i) << 16;
    std::memcpy(&emb[i], &bits, sizeof bits);
    lo = std::min(lo, emb[i]);
    hi = std::max(hi, emb[i]);
  }
  ASSERT_GT(hi - lo, 1.0f);  // values spread over [-1, 1]
  namespace io = tinyquant::io;
  const io::SafeTensors src = io::load_safetensors(kData + "/model.safetensors");
  io::SafeTensors ref;
  for (const char* name : {"fc.weight", "fc.bias"})
    ref.tensors.push_back(io::SafeTensor::from(name, src.at(name).as<float>(), src.at(name).shape));
  ref.tensors.push_back(io::SafeTensor::from("emb", emb, {4, 6}));
  io::save_safetensors(kData + "/model_f32.safetensors", ref);
  // Affine 8-bit per tensor from min / max: every value within half a step of the range / 255.
  const nlohmann::json e = inspect_json(out, "--reference " + kData + "/model_f32.safetensors");
  EXPECT_LE(tensor(e, "emb")["error"]["max_abs"].get<double>(),
            0.5 * (static_cast<double>(hi) - lo) / 255.0 * (1.0 + 1e-5));

  const Result q1 = run("quantize " + kData + "/model.safetensors " + out + " --quantize-1d");
  ASSERT_EQ(q1.code, 0) << q1.err;
  EXPECT_EQ(tensor(inspect_json(out), "fc.bias")["storage"], "int8");
}

TEST(Cli, QuantizePerGroupRecordsGroupSizeAndScaleCount) {
  const std::string out = kData + "/group.tqm";
  const Result q = run("quantize " + kData + "/fc.npy " + out +
                       " --bits 4 --granularity group --group-size 4 --rounding even --name w");
  ASSERT_EQ(q.code, 0) << q.err;
  const nlohmann::json t = inspect_json(out)["tensors"][0];
  EXPECT_EQ(t["name"], "w");
  EXPECT_EQ(t["granularity"], "per-group");
  EXPECT_EQ(t["group_size"], 4);
  EXPECT_EQ(t["axis"], -1);
  EXPECT_EQ(t["scales"], 8 * 16 / 4);
}

TEST(Cli, PruneMagnitudeAndNmGiveTheRequestedSparsity) {
  const std::string out = kData + "/pruned.tqm";
  // make_inputs writes no zeros, so the zeros after pruning are exactly the pruned weights.
  Result r = run("prune " + kData + "/fc.npy " + out + " --sparsity 0.75");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("sparsity 0.750"), std::string::npos) << r.out;
  EXPECT_DOUBLE_EQ(inspect_json(out)["tensors"][0]["sparsity"].get<double>(), 0.75);

  r = run("prune " + kData + "/fc.npy " + out + " --method nm --n 1 --m 4");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(inspect_json(out)["tensors"][0]["sparsity"].get<double>(), 0.75);

  r = run("prune " + kData + "/fc.npy " + out +
          " --method structured --sparsity 0.5 --criterion l2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(inspect_json(out)["tensors"][0]["sparsity"].get<double>(), 0.5);

  r = run("prune " + kData + "/model.safetensors " + out + " --method global --sparsity 0.5");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = inspect_json(out);
  EXPECT_DOUBLE_EQ(tensor(j, "fc.bias")["sparsity"].get<double>(), 0.0);  // biases untouched
  // Half of all the weights (fc.weight 128, emb 24) are zero, counted over both tensors: the
  // ranking is global, so the two tensors need not be at 0.5 each.
  double zeros = 0.0;
  for (const auto& [name, count] :
       {std::pair<const char*, double>{"fc.weight", 128.0}, {"emb", 24.0}})
    zeros += tensor(j, name)["sparsity"].get<double>() * count;
  EXPECT_DOUBLE_EQ(zeros, 76.0);
}

TEST(Cli, ProgressGoesToStderrOnlyAndLeavesStdoutUnchanged) {
  const std::string st = kData + "/model.safetensors", model = kData + "/progress.tqm";
  struct Case {
    std::string args, step, total;
  };
  // model.safetensors: fc.weight 8x16 + fc.bias 8 float32, emb 4x6 bfloat16 read as float32.
  for (const Case& c : std::vector<Case>{
           {"quantize " + st + " " + model, "quantize", "/640 bytes"},
           {"prune " + st + " " + model + " --sparsity 0.5", "prune", "/2 tensors"},
           {"prune " + st + " " + model + " --method global", "prune", "2/2 tensors"},
           {"inspect " + model + " --json --reference " + st, "inspect", "/3 tensors"}}) {
    const Result never = run(c.args + " --progress never");
    const Result always = run(c.args + " --progress always");
    const Result automatic = run(c.args);  // stderr is a file here, not a terminal
    ASSERT_EQ(never.code, 0) << never.err;
    ASSERT_EQ(always.code, 0) << always.err;
    ASSERT_EQ(automatic.code, 0) << automatic.err;
    EXPECT_EQ(always.out, never.out) << c.args;
    EXPECT_EQ(automatic.out, never.out) << c.args;
    EXPECT_EQ(never.err.find('\r'), std::string::npos) << never.err;
    EXPECT_EQ(automatic.err.find('\r'), std::string::npos) << automatic.err;
    EXPECT_EQ(always.err.find('\r'), 0u) << always.err;
    EXPECT_NE(always.err.find("\r" + c.step + " ["), std::string::npos) << always.err;
    EXPECT_NE(always.err.find(c.total), std::string::npos) << always.err;
    EXPECT_NE(always.err.find("100%\n"), std::string::npos) << always.err;
    EXPECT_EQ(always.out.find('\r'), std::string::npos);
  }
  const Result bad = run("inspect " + model + " --progress sometimes");
  EXPECT_EQ(bad.code, 2) << bad.err;
}

// Runs the command with stderr on a pseudo-terminal and stdout into `out_path`; returns what the
// terminal received.
std::string run_on_terminal(const std::vector<std::string>& args, const std::string& out_path) {
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return "forkpty failed";
  if (pid == 0) {  // child: stdin/stdout/stderr are the terminal; send stdout to the file
    const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) _exit(127);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kExe.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kExe.c_str(), argv.data());
    _exit(127);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child has exited and closed the terminal
    text.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    text += "[exit status " + std::to_string(status) + "]";
  return text;
}

TEST(Cli, ProgressAutoDrawsOnATerminal) {
  const std::string model = kData + "/tty.tqm";
  ASSERT_EQ(run("quantize " + kData + "/model.safetensors " + model).code, 0);
  const std::string json_path = kData + "/tty.json";
  const std::string tty = run_on_terminal(
      {"inspect", model, "--json", "--reference", kData + "/model.safetensors"}, json_path);
  EXPECT_NE(tty.find("\rinspect [...."), std::string::npos) << tty;
  EXPECT_NE(tty.find("3/3 tensors 100%"), std::string::npos) << tty;
  EXPECT_EQ(tty.find("exit status"), std::string::npos) << tty;
  // stdout (a file here) holds the same JSON as without a terminal.
  EXPECT_EQ(slurp(json_path),
            run("inspect " + model + " --json --reference " + kData + "/model.safetensors").out);
  // --progress never stays silent even on a terminal.
  const std::string quiet =
      run_on_terminal({"inspect", model, "--json", "--progress", "never"}, json_path);
  EXPECT_EQ(quiet.find("inspect ["), std::string::npos) << quiet;
}

TEST(Cli, PruneStoresTheMatrixInTheAskedSparseFormat) {
  const std::string in = kData + "/layer.safetensors", out = kData + "/stored.tqm";
  // 1x16 blocks of a 16x48 matrix: 48 blocks, round(0.5 * 48) = 24 pruned.
  Result r = run("prune " + in + " " + out + " --method block --block 1x16 --sparsity 0.5 " +
                 "--storage block-csr");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("sparsity 0.500  block-csr"), std::string::npos) << r.out;
  nlohmann::json t = tensor(inspect_json(out), "fc.weight");
  EXPECT_EQ(t["format"], 3);  // StorageFormat::kBlockCsr
  EXPECT_EQ(t["format_name"], "block-csr");
  // The table names the format too, and says "dense" for the bias.
  const Result table = run("inspect " + out);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("int8     block-csr [16, 48]"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("dense     [16]"), std::string::npos) << table.out;
  // Sparse format names are spelled as --storage takes them, so they can be passed back.
  r = run("prune " + in + " " + out + " --method nm --n 2 --m 4 --storage nm");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(tensor(inspect_json(out), "fc.weight")["format_name"], "nm");
  // int8 values of 24 blocks (384) + block_row_ptr 17 * 4 + block_col 24 * 2 = 500 bytes; the
  // file also holds the 20-byte layout part.
  EXPECT_EQ(t["bytes"], 384 + 68 + 48 + 20);
  EXPECT_EQ(tensor(inspect_json(out), "fc.bias")["format"], 0);

  r = run("prune " + in + " " + out + " --method nm --n 1 --m 4 --storage auto --bits 4");
  ASSERT_EQ(r.code, 0) << r.err;
  t = tensor(inspect_json(out), "fc.weight");
  EXPECT_NE(t["format"], 0);  // 75% zeros: some sparse format beats dense int4
  EXPECT_EQ(t["storage"], "int4");
  EXPECT_DOUBLE_EQ(t["sparsity"].get<double>(), 0.75);  // decoded from the sparse arrays
  // --storage auto weighs block CSR and N:M with --block, --n and --m whatever the method.
  for (const char* shape : {"--block 4x16", "--n 1 --m 8"}) {
    r = run("prune " + in + " " + out + " --sparsity 0.8 --storage auto " + shape);
    EXPECT_EQ(r.code, 0) << shape << "\n" << r.err;
  }

  // A format the pruned matrix does not fit is a data error naming the tensor.
  r = run("prune " + in + " " + out + " --sparsity 0.3 --storage nm");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tensor 'fc.weight' [16, 48]: --storage nm"), std::string::npos) << r.err;
  // Blocks that do not tile a matrix: the tensor is named.
  r = run("prune " + kData + "/net.safetensors " + out + " --method block --block 1x16");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("prune: tensor 'conv.weight' [8, 3, 3, 4]: block_mask: block 1x16"),
            std::string::npos)
      << r.err;
  for (const char* bad : {"--block 0x16", "--block 1x", "--block 4", "--storage csr"}) {
    r = run("prune " + in + " " + out + " " + bad);
    EXPECT_EQ(r.code, 2) << bad;
  }
  // Affine weights put pruned values on the zero point, which no sparse format drops.
  for (const char* storage : {"auto", "csr-u8", "nm"}) {
    r = run("prune " + in + " " + out + " --method nm --n 2 --m 4 --scheme affine --storage " +
            storage);
    EXPECT_EQ(r.code, 2) << storage;
    EXPECT_NE(r.err.find("needs --scheme symmetric"), std::string::npos) << r.err;
  }
  r = run("prune " + in + " " + out + " --method nm --n 2 --m 4 --scheme affine");
  EXPECT_EQ(r.code, 0) << r.err;  // dense storage takes them
}

TEST(Cli, UsageErrorsExitWith2) {
  for (const std::string& args : std::vector<std::string>{
           "quantize " + kData + "/fc.npy x.tqm --bits 9", "quantize " + kData + "/fc.npy",
           "quantize " + kData + "/fc.npy x.tqm --scheme weird", "inspect", "frobnicate",
           "prune " + kData + "/fc.npy x.tqm --sparsity 1.5",
           "export-c a.tqm b.h --input-scale 0.1", "quantize a.npy b.tqm --no-such-option"}) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << args;
  }
}

TEST(Cli, HelpExitsWith0AndDescribesEveryOption) {
  Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* sub : {"quantize", "prune", "inspect", "export-c"})
    EXPECT_NE(r.out.find(sub), std::string::npos) << sub;
  r = run("quantize --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt : {"--bits", "--scheme", "--granularity", "--axis", "--group-size",
                          "--rounding", "--quantize-1d", "--name", "--progress", "--input-scale"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  r = run("prune --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt :
       {"--method", "--sparsity", "--block", "--storage", "block-csr", "auto", "--progress"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  r = run("inspect --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--progress"), std::string::npos);
  r = run("export-c --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt :
       {"--source", "--prefix", "--input-scale", "--output-zero-point", "--act", "--conv",
        "LAYER:in_scale,in_zero_point,out_scale,out_zero_point", "padding=same|valid"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

// Entry names are bytes from a file: control bytes (a terminal escape, a line break) are shown
// as \xNN in the table, so a name cannot recolour the terminal or break the row.
TEST(Cli, InspectShowsControlBytesInNamesEscaped) {
  const std::string model = kData + "/escaped.tqm";
  const float f[2] = {1.0f, -2.0f};
  tinyquant::io::Model m;
  m.entries.push_back(tinyquant::io::make_entry("red\x1b[31mname\nx", f, tinyquant::Shape{2}));
  tinyquant::io::save_model(m, model);
  const Result r = run("inspect " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("red\\x1b[31mname\\x0ax "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;  // title and one row
  // JSON escapes them its own way.
  EXPECT_EQ(tensor(inspect_json(model), "red\x1b[31mname\nx")["params"], 2);
}

namespace {

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, tinyquant::Shape>>& tensors) {
  namespace io = tinyquant::io;
  io::SafeTensors st;
  uint32_t seed = 1;
  for (const auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (const int64_t e : shape) n *= e;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v)
      x = static_cast<float>((seed = seed * 1664525u + 1013904223u) >> 20) / 4096.0f - 0.5f;
    st.tensors.push_back(io::SafeTensor::from(name, v, shape));
  }
  io::save_safetensors(path, st);
}

}  // namespace

TEST(Cli, DataErrorsExitWith1WithAMessage) {
  // A finite float64 beyond float32's range is named as such, not as the infinity it narrows to.
  tinyquant::io::save_npy(kData + "/big64.npy", tinyquant::io::NpyArray::from(
                                                    std::vector<double>{1.0, -1e300, 2.0}, {3}));
  write_safetensors(kData + "/unnamed.safetensors", {{"w", {2, 2}}, {"", {2, 2}}});
  write_safetensors(kData + "/nul.safetensors", {{std::string("a\0b", 3), {2, 2}}});
  tinyquant::io::save_npy(
      kData + "/rank9.npy",
      tinyquant::io::NpyArray::from(std::vector<float>{1.0f, 2.0f}, {1, 1, 1, 1, 1, 1, 1, 1, 2}));
  struct Case {
    std::string args, words;
  };
  for (const Case& c : std::vector<Case>{
           {"quantize " + kData + "/big64.npy " + kData + "/x.tqm",
            "'big64': float64 value -1e+300 at index 1 is beyond float32's range"},
           // What a model file cannot hold is said about the input, before any work.
           {"quantize " + kData + "/unnamed.safetensors " + kData + "/x.tqm",
            "unnamed.safetensors: tensor 1 ('') [2, 2]: a model file cannot hold it: name length "
            "0 must be in [1, 1024]"},
           {"prune " + kData + "/nul.safetensors " + kData + "/x.tqm --sparsity 0.5",
            "nul.safetensors: tensor 0 ('a\\x00b') [2, 2]: a model file cannot hold it: name "
            "contains a NUL byte"},
           {"quantize " + kData + "/rank9.npy " + kData + "/x.tqm",
            "rank9.npy: tensor 0 ('rank9') [1, 1, 1, 1, 1, 1, 1, 1, 2]: a model file cannot hold "
            "it: rank 9 exceeds 8"},
           {"inspect " + kData + "/corrupt.tqm", "corrupt.tqm: entry 0: payload CRC mismatch"},
           {"inspect " + kData + "/not_a_model.tqm",
            "not_a_model.tqm: file header: truncated file header"},
           {"inspect " + kData + "/missing.tqm", "cannot open '" + kData + "/missing.tqm'"},
           {"quantize " + kData + "/fc.txt " + kData + "/x.tqm", "unknown input type"},
           // An option the input cannot take is found once the input is read: exit 1 too.
           {"quantize " + kData + "/fc.npy " + kData + "/x.tqm --granularity group --axis 5",
            "tensor 'fc'"},
           {"quantize " + kData + "/net.safetensors " + kData + "/x.tqm --input-scale nosuch:0.1",
            "--input-scale nosuch: the input has no 'nosuch.weight'"},
           {"export-c " + kData + "/corrupt.tqm " + kData + "/x.h",
            "corrupt.tqm: entry 0: payload CRC mismatch"},
       }) {
    const Result r = run(c.args);
    EXPECT_EQ(r.code, 1) << c.args;
    EXPECT_EQ(r.err.rfind("tinyquant: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.words), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(Cli, ExportWithoutActivationParametersDocumentsTheLayerArithmetic) {
  const std::string model = kData + "/exp.tqm";
  ASSERT_EQ(run("quantize " + kData + "/model.safetensors " + model).code, 0);
  const std::string h = kData + "/noact.h";
  const Result r = run("export-c " + model + " " + h);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = slurp(h);
  EXPECT_NE(text.find("no activation parameters given"), std::string::npos);
  EXPECT_EQ(text.find("_multipliers"), std::string::npos);
  EXPECT_NE(text.find("model_fc_weight_scales"), std::string::npos);
}

}  // namespace

// ---- inputs an adversarial review of the command found mishandled --------------------------

namespace {

// A float32 .npy of `shape` with no data, its header written by hand (the library's writer
// rejects shapes whose extents overflow).
void write_empty_npy(const std::string& path, const std::string& shape) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  std::ofstream(path, std::ios::binary) << bytes;
}

void expect_error(const Result& r, int code, const std::string& words, const std::string& what) {
  EXPECT_EQ(r.code, code) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << what << "\n" << r.err;
}

}  // namespace

TEST(Cli, EmptyTensorsWithHugeExtentsAreRejectedNotOverflowed) {
  write_empty_npy(kData + "/zbig.npy", "(0, 1099511627776, 1099511627776)");
  expect_error(run("quantize " + kData + "/zbig.npy " + kData + "/zbig.tqm"), 1,
               "element count overflows int64", "quantize");
}

// A tensor without values has no range to quantize with: it is kept as float32, as a 1-D tensor
// is, and the others are quantized; it does not end the run.
TEST(Cli, QuantizeKeepsAnEmptyTensorAsFloat) {
  write_safetensors(kData + "/with_empty.safetensors", {{"a.weight", {4, 8}}, {"e", {0, 8}}});
  const std::string model = kData + "/with_empty.tqm";
  const Result r = run("quantize " + kData + "/with_empty.safetensors " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("kept as float (no values)"), std::string::npos) << r.out;
  const nlohmann::json j = inspect_json(model);
  EXPECT_EQ(tensor(j, "e")["storage"], "float32");
  EXPECT_EQ(tensor(j, "e")["shape"], (std::vector<int64_t>{0, 8}));
  EXPECT_EQ(tensor(j, "a.weight")["storage"], "int8");
  // inspect --reference reports the others' errors and none for it (it has no values).
  const nlohmann::json jr = inspect_json(model, "--reference " + kData + "/with_empty.safetensors");
  EXPECT_FALSE(tensor(jr, "e").contains("error")) << jr.dump();
  EXPECT_TRUE(tensor(jr, "a.weight").contains("error")) << jr.dump();
}

// N:M groups run along the last axis: a tensor whose last axis is shorter than m (a depthwise
// kernel [c][kh][kw][1]) gets a note saying why little or nothing was pruned.
TEST(Cli, NmOnAShortLastAxisSaysSo) {
  write_safetensors(kData + "/nm_short_axis.safetensors",
                    {{"dw.weight", {6, 3, 3, 1}}, {"fc", {2, 8}}});
  const Result r = run("prune " + kData + "/nm_short_axis.safetensors " + kData +
                       "/nm_short_axis.tqm --method nm");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: 'dw.weight' [6, 3, 3, 1]: its last axis (1) is shorter than m = 4"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("'fc'"), std::string::npos) << r.err;
}

TEST(Cli, StructuredPruningOfAnEmptyTensorSaysSo) {
  write_empty_npy(kData + "/z40.npy", "(4, 0)");
  expect_error(run("prune " + kData + "/z40.npy " + kData + "/z40.tqm --method structured"), 1,
               "is empty", "prune --method structured");
}

TEST(Cli, ReferenceTensorsAreMatchedByName) {
  write_safetensors(kData + "/ab.safetensors", {{"a", {4, 8}}, {"b", {4, 8}}});
  write_safetensors(kData + "/a_only.safetensors", {{"a", {4, 8}}});
  ASSERT_EQ(run("quantize " + kData + "/ab.safetensors " + kData + "/ab.tqm").code, 0);
  expect_error(run("inspect " + kData + "/ab.tqm --reference " + kData + "/a_only.safetensors"), 1,
               "no tensor named 'b'", "inspect --reference");
  // A .npy file's tensor is named after the file, and stands for a model's only tensor.
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData + "/fc_named.tqm --name other").code, 0);
  const nlohmann::json j =
      inspect_json(kData + "/fc_named.tqm", "--reference " + kData + "/fc.npy");
  EXPECT_TRUE(tensor(j, "other").contains("error"));
}

TEST(Cli, NegativeInfiniteSqnrIsPrintedAsSuch) {
  tinyquant::io::save_npy(kData + "/fc_zero.npy",
                          tinyquant::io::NpyArray::from(std::vector<float>(8 * 16, 0.0f), {8, 16}));
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData + "/fc_q.tqm").code, 0);
  const Result r = run("inspect " + kData + "/fc_q.tqm --reference " + kData + "/fc_zero.npy");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("SQNR -inf dB"), std::string::npos) << r.out;
}

TEST(Cli, JsonOfANameThatIsNotUtf8ReplacesTheBadByte) {
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData +
                "/latin1.tqm --name \"$(printf 'gewicht\\344')\"")
                .code,
            0);
  const Result r = run("inspect " + kData + "/latin1.tqm --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tensors"][0]["name"].get<std::string>(), "gewicht\xef\xbf\xbd");
}

TEST(Cli, ExportRejectsCNamesThatTwoEntriesShare) {
  write_safetensors(kData + "/derived.safetensors", {{"w", {2, 3}}, {"w_scales", {2, 3}}});
  write_safetensors(kData + "/case.safetensors", {{"fc.weight", {4, 8}}, {"FC.weight", {2, 8}}});
  for (const std::string name : {"derived", "case"}) {
    ASSERT_EQ(
        run("quantize " + kData + "/" + name + ".safetensors " + kData + "/" + name + ".tqm").code,
        0);
    expect_error(run("export-c " + kData + "/" + name + ".tqm " + kData + "/" + name + ".h"), 1,
                 "both give the C name", name);
  }
}

// The source #includes the header by its file name, which a quote would break: no file of the
// pair is written.
TEST(Cli, ExportWritesNeitherFileOfAPairItCannotFinish) {
  const std::string header = kData + "/q\"h.h", source = kData + "/q_h.c";
  std::remove(header.c_str());
  std::remove(source.c_str());
  expect_error(run("export-c " + kData + "/model.tqm '" + header + "' --source " + source), 1,
               "cannot be #included", "export-c pair");
  EXPECT_FALSE(std::ifstream(header).good());
  EXPECT_FALSE(std::ifstream(source).good());
  // The .c file cannot be written after the header was: a new header is removed again, an old
  // one gets its bytes back.
  const std::string h = kData + "/pair.h", bad_source = kData + "/no/such/dir/pair.c";
  std::remove(h.c_str());
  expect_error(run("export-c " + kData + "/model.tqm " + h + " --source " + bad_source), 1,
               "'" + bad_source + "'", "source in a missing directory");
  EXPECT_FALSE(std::ifstream(h).good());
  std::ofstream(h) << "old header\n";
  expect_error(run("export-c " + kData + "/model.tqm " + h + " --source " + bad_source), 1,
               "'" + bad_source + "'", "source in a missing directory, old header");
  EXPECT_EQ(slurp(h), "old header\n");
  std::remove(h.c_str());
}

// export-c writes both files to temporary files before either is renamed into place, so a pair it
// cannot finish changes nothing: not a FIFO given as the header (it would be written in place,
// last), not a dangling link's target, not old files whose replacements ran out of room half way
// (a file size limit, with SIGXFSZ ignored so the write fails with EFBIG); and no temporary file
// is left.
TEST(Cli, ExportOfAPairItCannotFinishChangesNothing) {
  const std::string fifo = kData + "/pair_fifo.h", link = kData + "/pair_link.h",
                    target = kData + "/pair_target.h", bad = kData + "/no/such/dir/pair.c";
  std::remove(fifo.c_str());
  std::remove(link.c_str());
  std::remove(target.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // A reader in case the header is written anyway (the test then fails, rather than hangs).
  const Result r = run_shell("(timeout 10 cat '" + fifo + "' > /dev/null 2>&1 &); " + kExe +
                             " export-c " + kData + "/model.tqm " + fifo + " --source " + bad);
  expect_error(r, 1, "'" + bad + "'", "header in a FIFO");
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // lets the reader go
  if (w >= 0) ::close(w);
  ASSERT_EQ(::symlink("pair_target.h", link.c_str()), 0);
  expect_error(run("export-c " + kData + "/model.tqm " + link + " --source " + bad), 1,
               "'" + bad + "'", "header through a dangling link");
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_NE(::lstat(target.c_str(), &st), 0);
  std::remove(fifo.c_str());
  std::remove(link.c_str());
  // Out of room (6 KiB: the 5 KB header fits, the 10 KB .c file does not): the old header and
  // .c file keep their bytes.
  const std::string dir = kData + "/pair_full", h = dir + "/net.h", c = dir + "/net.c";
  ASSERT_EQ(run_shell("rm -rf '" + dir + "' && mkdir '" + dir + "'").code, 0);
  const std::string net = kData + "/pair_net.tqm";
  ASSERT_EQ(run("quantize " + kData + "/net.safetensors " + net).code, 0);
  std::ofstream(h) << "old header\n";
  std::ofstream(c) << "old source\n";
  const Result full = run_shell("ulimit -f 6; trap '' XFSZ; " + kExe + " export-c " + net + " " +
                                h + " --source " + c + " --input-scale 0.02 --output-scale 0.1");
  expect_error(full, 1, std::strerror(EFBIG), "out of room");
  EXPECT_EQ(slurp(h), "old header\n");
  EXPECT_EQ(slurp(c), "old source\n");
  size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(f.path().string().find(".tmp."), std::string::npos) << f.path();
  }
  EXPECT_EQ(files, 2u);
  // With room, both are replaced.
  ASSERT_EQ(
      run("export-c " + net + " " + h + " --source " + c + " --input-scale 0.02 --output-scale 0.1")
          .code,
      0);
  EXPECT_NE(slurp(h), "old header\n");
  EXPECT_NE(slurp(c).find("#include \"net.h\""), std::string::npos);
}

// No command writes over the file it reads, and export-c's header and .c file are two files
// (the same path given twice, however spelt, or two links to one file).
TEST(Cli, OutputsThatAreTheInputOrEachOtherAreUsageErrors) {
  const std::string npy = kData + "/self.npy", model = kData + "/self.tqm";
  ASSERT_EQ(run_shell("cp " + kData + "/fc.npy " + npy).code, 0);
  ASSERT_EQ(run("quantize " + npy + " " + model).code, 0);
  const std::string npy_bytes = slurp(npy), model_bytes = slurp(model);
  const std::string h = kData + "/self.h", dot_h = kData + "/./self.h", hl = kData + "/self_l.h";
  std::remove(h.c_str());
  std::remove(hl.c_str());
  std::ofstream(h) << "old\n";
  ASSERT_EQ(::link(h.c_str(), hl.c_str()), 0);
  const std::string dangling = kData + "/self_l2.h";
  std::remove(dangling.c_str());
  std::remove((kData + "/self_t.c").c_str());
  ASSERT_EQ(::symlink("self_t.c", dangling.c_str()), 0);
  struct Case {
    std::string args, words;
  };
  for (const Case& c : std::vector<Case>{
           {"quantize " + npy + " " + npy, "is the input file"},
           {"quantize " + npy + " " + kData + "/../" + kData.substr(kData.rfind('/') + 1) +
                "/self.npy",
            "is the input file"},
           {"prune " + npy + " " + npy + " --sparsity 0.5", "is the input file"},
           {"export-c " + model + " " + model, "is the input file"},
           {"export-c " + model + " " + h + " --source " + model, "is the input file"},
           {"export-c " + model + " " + h + " --source " + dot_h, "needs a path of its own"},
           {"export-c " + model + " " + h + " --source " + hl, "needs a path of its own"},
           // A dangling link leads to the file a write would create.
           {"export-c " + model + " " + dangling + " --source " + kData + "/self_t.c",
            "needs a path of its own"},
       })
    expect_error(run(c.args), 2, c.words, c.args);
  EXPECT_EQ(slurp(npy), npy_bytes);
  EXPECT_EQ(slurp(model), model_bytes);
  EXPECT_EQ(slurp(h), "old\n");
  // Distinct files still work.
  EXPECT_EQ(run("export-c " + model + " " + h + " --source " + kData + "/self.c").code, 0);
  EXPECT_FALSE(std::filesystem::exists(kData + "/self_t.c"));
  for (const std::string& f : {npy, model, h, hl, dangling, kData + "/self.c"})
    std::remove(f.c_str());
}

// Options that contradict each other, or a value another option rules out, are usage errors
// (exit 2) named after the option, not failures of the run.
TEST(Cli, OptionsThatRuleEachOtherOutAreUsageErrors) {
  ASSERT_EQ(run("quantize " + kData + "/net.safetensors " + kData + "/net_use.tqm").code, 0);
  const std::string model = kData + "/net_use.tqm", h = kData + "/net_use.h ";
  const std::string fc = kData + "/fc.npy " + kData + "/use.tqm ";
  struct Case {
    std::string args, words;
  };
  for (const Case& c : std::vector<Case>{
           {"export-c " + model + " " + h + "--input-zero-point 5", "requires --input-scale"},
           {"export-c " + model + " " + h + "--output-zero-point 5", "requires --output-scale"},
           {"export-c " + model + " " + h + "--input-scale 0.02 --output-scale 0",
            "--output-scale: the scale '0' must be finite and > 0"},
           {"export-c " + model + " " + h + "--input-scale nan --output-scale 0.1",
            "--input-scale: the scale 'nan' must be finite"},
           {"export-c " + model + " " + h + "--input-scale 1e-46 --output-scale 0.1",
            "--input-scale: the scale '1e-46' is 0 in float32; it must be finite and > 0"},
           {"export-c " + model + " " + h + "--input-scale 0.1 --output-scale 1e39",
            "--output-scale: the scale '1e39' is inf in float32"},
           {"export-c " + model + " " + h + "--input-scale 0.1x --output-scale 0.1",
            "--input-scale: expected a number, got '0.1x'"},
           {"export-c " + model + " " + h + "--conv conv:depthwise=2,groups=3",
            "groups does not go with depthwise"},
           {"prune " + fc + "--method nm --n 4 --m 2", "n = 4 is larger than m = 2"},
           {"prune " + fc + "--storage nm --n 3 --m 2", "n = 3 is larger than m = 2"},
           {"prune " + fc + "--method nm --sparsity 0.9", "does not apply to --method nm"},
           {"prune " + fc + "--sparsity 1", "outside [0, 1)"},
           {"prune " + fc + "--sparsity -0.1", "outside [0, 1)"},
           {"quantize " + fc + "--input-scale fc:0",
            "--input-scale: fc: the scale '0' must be finite and > 0"},
           {"quantize " + kData + "/fc.npy ''", "OUT: the output path is empty"},
           {"export-c " + model + " " + h + "--source ''", "--source: the path is empty"},
           // Beyond float's range is a value out of range, not text that is not a number.
           {"quantize " + fc + "--input-scale 1e40",
            "--input-scale: the scale '1e40' is inf in float32; it must be finite and > 0"},
           {"quantize " + fc + "--input-scale 1e-50",
            "--input-scale: the scale '1e-50' is 0 in float32; it must be finite and > 0"},
           {"export-c " + model + " " + h + "--act fc1:1e-50,0,0.05,0",
            "--act: fc1 input: the scale '1e-50' is 0 in float32; it must be finite and > 0"},
           {"export-c " + model + " " + h + "--act fc1:0.02,0,-1,0",
            "--act: fc1 output: the scale '-1' must be finite and > 0"},
           // An option the command would ignore is named, not dropped.
           {"quantize " + kData + "/net.safetensors " + kData + "/use.tqm --name w",
            "--name: applies to a .npy input only"},
           {"quantize " + fc + "--granularity tensor --axis 1",
            "--axis: does not apply to --granularity tensor"},
           {"quantize " + fc + "--group-size 8", "--group-size: applies to --granularity group"},
           {"prune " + fc + "--criterion l2", "--criterion: applies to --method structured"},
           {"prune " + fc + "--block 1x4", "--block: applies to --method block and --storage"},
           {"prune " + fc + "--storage csr-u8 --block 1x4", "--block: applies to --method block"},
           {"prune " + fc + "--n 1", "--n: applies to --method nm and --storage nm"},
           {"prune " + fc + "--method global --m 8", "--m: applies to --method nm"},
           {"bogus " + fc, "unknown command 'bogus'"},
           {"quantize " + fc + "--bits abc",
            "--bits: expected a whole number from 2 to 8, got 'abc'"},
           {"prune " + fc + "--method nm --n 2.5", "--n: expected a whole number from 1 to 256"}}) {
    const Result r = run(c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.words), std::string::npos) << c.args << "\n" << r.err;
  }
  // The option is named once, not once by the parser and again by the message.
  const Result twice = run("quantize " + fc + "--input-scale fc:0");
  EXPECT_EQ(twice.err.find("--input-scale"), twice.err.rfind("--input-scale")) << twice.err;
  // A convolution given without settings takes the defaults.
  EXPECT_EQ(run("export-c " + model + " " + h + "--conv conv:").code, 0);
  EXPECT_EQ(run("prune " + fc + "--sparsity 0.9999999").code, 0);    // inside [0, 1)
  EXPECT_EQ(run("quantize " + fc + "--input-scale 1e-45").code, 0);  // subnormal, yet > 0
}

// Model files are written to a temporary file renamed over the path: a FIFO (or a device) there
// is refused instead of replaced, and a symbolic link leads to the file it names.
TEST(Cli, QuantizeWritesThroughLinksAndRefusesWhatIsNotAFile) {
  const std::string fifo = kData + "/out_fifo.tqm", link = kData + "/out_link.tqm",
                    target = kData + "/out_target.tqm";
  std::remove(fifo.c_str());
  std::remove(link.c_str());
  std::remove(target.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_error(run("quantize " + kData + "/fc.npy " + fifo), 1, "is not a regular file", "fifo");
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::symlink("out_target.tqm", link.c_str()), 0);
  const Result r = run("quantize " + kData + "/fc.npy " + link);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(tinyquant::io::load_model(target).entries.size(), 1u);
  std::remove(fifo.c_str());
  std::remove(link.c_str());
  std::remove(target.c_str());
}

// Output the command could not deliver is an error, not a success.
TEST(Cli, AFailedWriteToStandardOutputIsAnError) {
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData + "/stdout.tqm").code, 0);
  for (const std::string& args :
       {"inspect " + kData + "/stdout.tqm --json", "inspect " + kData + "/stdout.tqm",
        "quantize " + kData + "/fc.npy " + kData + "/stdout.tqm"}) {
    const Result r = run_shell(kExe + " " + args + " > /dev/full");
    expect_error(r, 1, "cannot write to standard output", args);
  }
}

// The README's "/dev/stdout is written in place" holds when standard output is a pipe (as here:
// popen), where /dev/stdout leads to /proc/self/fd/1, a link whose text "pipe:[N]" is no path.
// A header written to standard output stays a header, the same as in a file: the status line
// goes to stderr then, and to stdout when the header goes to a file.
TEST(Cli, ExportToStandardOutputOnAPipe) {
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData + "/pipe.tqm").code, 0);
  const Result r = run("export-c " + kData + "/pipe.tqm /dev/stdout");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("/* Generated by tinyquant", 0), 0u) << r.out.substr(0, 200);
  EXPECT_NE(r.out.find("alignas"), std::string::npos);
  EXPECT_EQ(r.err, "wrote /dev/stdout\n");
  const std::string file = kData + "/pipe_check.h";
  const Result to_file = run("export-c " + kData + "/pipe.tqm " + file);
  ASSERT_EQ(to_file.code, 0) << to_file.err;
  EXPECT_EQ(to_file.out, "wrote " + file + "\n");
  EXPECT_EQ(r.out, slurp(file));
  std::remove(file.c_str());
}

// Errors about the output, --reference or --source files name that file, not the input.
TEST(Cli, ErrorsAboutOtherFilesNameThoseFiles) {
  ASSERT_EQ(run("quantize " + kData + "/fc.npy " + kData + "/other.tqm").code, 0);
  std::vector<float> nan_ref = fc_weights();
  nan_ref[3] = std::nanf("");
  tinyquant::io::save_npy(kData + "/fc_nan.npy", tinyquant::io::NpyArray::from(nan_ref, {8, 16}));
  struct Case {
    std::string args, first_words, words;
  };
  for (const Case& c : std::vector<Case>{
           {"inspect " + kData + "/other.tqm --reference " + kData + "/fc_nan.npy",
            "tinyquant: error: --reference " + kData + "/fc_nan.npy: tensor 'fc_nan'", "index 3"},
           {"inspect " + kData + "/other.tqm --reference " + kData + "/missing_ref.npy",
            "tinyquant: error: --reference: ", "missing_ref.npy"},
           {"quantize " + kData + "/fc.npy " + kData + "/no/such/dir/x.tqm",
            "tinyquant: error: cannot write '" + kData + "/no/such/dir/x.tqm'", ""}}) {
    const Result r = run(c.args);
    EXPECT_EQ(r.code, 1) << c.args;
    EXPECT_EQ(r.err.rfind(c.first_words, 0), 0u) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.words), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(Cli, ExportedCommentsSurviveANameWithCommentMarkers) {
  write_safetensors(kData + "/cmt.safetensors", {{"conv/*1*/.weight", {4, 8}}});
  ASSERT_EQ(run("quantize " + kData + "/cmt.safetensors " + kData + "/cmt.tqm").code, 0);
  ASSERT_EQ(run("export-c " + kData + "/cmt.tqm " + kData + "/cmt.h").code, 0);
  const std::string cmd = "cc -std=c99 -Wall -Wextra -Werror -fsyntax-only -x c " + kData +
                          "/cmt.h 2>" + kData + "/cmt_cc.txt";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(kData + "/cmt_cc.txt");
}

TEST(Cli, ExportRejectsBadConvolutionSettings) {
  ASSERT_EQ(run("quantize " + kData + "/net.safetensors " + kData + "/net_conv.tqm").code, 0);
  const std::string base = "export-c " + kData + "/net_conv.tqm " + kData + "/net_conv.h ";
  expect_error(run(base + "--conv conv:groups=3"), 1,
               "groups = 3 must be >= 1 and divide out_c = 8", "groups");
  expect_error(run(base + "--conv conv:stride=99999999999x1"), 2, "bad pair", "stride overflow");
  expect_error(run(base + "--conv conv:stride=2x2,stride=1x1"), 2, "given twice", "stride twice");
  expect_error(run("prune " + kData + "/fc.npy " + kData + "/b.tqm --block 99999999999x1"), 2,
               "ROWSxCOLS", "block overflow");
}

TEST(Cli, AllZeroTensorsAreStoredExactly) {
  // 0.999999 of 128 weights rounds to all of them: a fully pruned matrix.
  const Result r = run("prune " + kData + "/fc.npy " + kData +
                       "/allzero.tqm --sparsity 0.999999 --progress never");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("all zeros, exact"), std::string::npos) << r.out;
  const nlohmann::json j = inspect_json(kData + "/allzero.tqm");
  EXPECT_DOUBLE_EQ(tensor(j, "fc")["sparsity"].get<double>(), 1.0);
  ASSERT_EQ(run("export-c " + kData + "/allzero.tqm " + kData + "/allzero.h").code, 0);
}

namespace {

// Saves one sparse entry of the codes `codes` [rows][cols] (CSR u8) with the given parameters.
void save_sparse(const std::string& path, const std::vector<int8_t>& codes, int64_t rows,
                 int64_t cols, const tinyquant::QuantParams& params) {
  tinyquant::SparseOptions o;
  o.format = tinyquant::StorageFormat::kCsrU8;
  o.value_type = params.spec.bits <= 4 ? tinyquant::ValueType::kInt4 : tinyquant::ValueType::kInt8;
  tinyquant::io::Model m;
  m.entries.push_back(tinyquant::io::make_sparse_entry(
      "w", tinyquant::SparseMatrix::from_dense(codes.data(), rows, cols, o), params));
  tinyquant::io::save_model(m, path);
}

}  // namespace

// Affine sparse weights: a position that stores nothing holds code 0, which reads as 0 only
// where the zero point is 0; a stored code reads 0 where it equals its zero point.
TEST(Cli, InspectSparsityOfAffineSparseWeightsCountsRealZeros) {
  const int64_t rows = 4, cols = 40;
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < codes.size(); ++i)
    codes[i] = static_cast<int8_t>(static_cast<int>((i * 7) % 13) - 6);  // -6..6, zeros included
  codes[5] = 5;                                                          // row 0
  codes[static_cast<size_t>(cols + 3)] = 5;                              // row 1, equals its zp
  const std::string path = kData + "/affine_sparse.tqm";

  tinyquant::QuantParams pc;
  pc.spec.bits = 8;
  pc.spec.granularity = tinyquant::Granularity::kPerChannel;
  pc.spec.axis = 0;
  pc.scales = {0.5f, 0.25f, 1e-3f, 2.0f};
  pc.zero_points = {0, 5, -3, 0};
  save_sparse(path, codes, rows, cols, pc);
  int64_t zeros = 0;
  for (int64_t i = 0; i < rows * cols; ++i)
    zeros += codes[static_cast<size_t>(i)] == pc.zero_points[static_cast<size_t>(i / cols)];
  EXPECT_DOUBLE_EQ(inspect_json(path)["tensors"][0]["sparsity"].get<double>(),
                   static_cast<double>(zeros) / static_cast<double>(rows * cols));

  // int4 per-group 16 along the rows: groups of 16, 16 and 8 (the last one short).
  tinyquant::QuantParams pg;
  pg.spec.bits = 4;
  pg.spec.granularity = tinyquant::Granularity::kPerGroup;
  pg.spec.axis = 1;
  pg.spec.group_size = 16;
  for (int64_t k = 0; k < rows * 3; ++k) {
    pg.scales.push_back(0.1f);
    pg.zero_points.push_back(k % 3 == 2 ? 0 : static_cast<int32_t>(k % 5) - 2);
  }
  save_sparse(path, codes, rows, cols, pg);
  zeros = 0;
  std::vector<float> real(codes.size());  // (code - zero point) x scale, by hand
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      const int32_t zp = pg.zero_points[static_cast<size_t>(r * 3 + c / 16)];
      zeros += codes[i] == zp;
      real[i] = static_cast<float>(codes[i] - zp) * 0.1f;
    }
  }
  // With a reference the matrix is decoded: its real values match the hand-made ones exactly.
  tinyquant::io::save_npy(kData + "/affine_ref.npy",
                          tinyquant::io::NpyArray::from(real, {rows, cols}));
  const nlohmann::json t =
      inspect_json(path, "--reference " + kData + "/affine_ref.npy")["tensors"][0];
  EXPECT_DOUBLE_EQ(t["sparsity"].get<double>(),
                   static_cast<double>(zeros) / static_cast<double>(rows * cols));
  EXPECT_EQ(t["error"]["max_abs"].get<double>(), 0.0);
  EXPECT_EQ(t["error"]["mse"].get<double>(), 0.0);
}

// A file of a few hundred bytes may declare a sparse matrix of 2^33 positions. inspect reads
// its sparsity from the stored values; a dense copy would need 8 GiB, and 40 GiB as floats.
TEST(Cli, InspectOfAHugeSparseMatrixMakesNoDenseCopy) {
  const int64_t rows = 4, cols = (int64_t{1} << 31) - 256;
  tinyquant::SparseArrays a;
  a.row_nnz = {1, 0, 2, 0};
  a.col_delta = {17, 3, 250};
  a.values = {9, -4, 0};       // a stored 0 reads like the positions that store nothing
  tinyquant::SparseOptions o;  // CSR u8, int8
  tinyquant::QuantParams p;
  p.spec = tinyquant::QuantSpec::int8_weights_per_channel();
  p.scales.assign(static_cast<size_t>(rows), 0.5f);
  p.zero_points.assign(static_cast<size_t>(rows), 0);
  tinyquant::io::Model m;
  m.entries.push_back(tinyquant::io::make_sparse_entry(
      "huge", tinyquant::SparseMatrix::from_arrays(rows, cols, o, a), p));
  const std::string path = kData + "/huge_sparse.tqm";
  tinyquant::io::save_model(m, path);
#if defined(TINYQUANT_CLI_SANITIZED)
  const std::string limit;  // the sanitizers reserve terabytes of address space
#else
  const std::string limit = "ulimit -v 1048576 && ";  // 1 GiB of address space
#endif
  const Result r = run_shell(limit + kExe + " inspect " + path + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json t = nlohmann::json::parse(r.out)["tensors"][0];
  EXPECT_EQ(t["params"].get<int64_t>(), rows * cols);
  EXPECT_DOUBLE_EQ(t["sparsity"].get<double>(), 1.0 - 2.0 / static_cast<double>(rows * cols));
}

namespace {

// fc.weight [4][8] and conv.weight [3][3][3][2] (OHWI), each with a bias and one unit whose
// weights are 1e-7 of the others: at min / max scales its bias has no int32 code.
void write_dead_unit_model(const std::string& path) {
  std::vector<float> fc(32), conv(3 * 3 * 3 * 2);
  for (size_t i = 0; i < fc.size(); ++i) fc[i] = 0.05f * static_cast<float>(int(i % 7) - 3);
  for (size_t i = 0; i < conv.size(); ++i) conv[i] = 0.1f * static_cast<float>(int(i % 5) - 2);
  for (size_t k = 0; k < 8; ++k) fc[2 * 8 + k] *= 1e-7f;      // fc unit 2
  for (size_t k = 0; k < 18; ++k) conv[1 * 18 + k] *= 1e-7f;  // conv channel 1
  tinyquant::io::SafeTensors st;
  using tinyquant::io::SafeTensor;
  st.tensors.push_back(SafeTensor::from("fc.weight", fc, {4, 8}));
  st.tensors.push_back(
      SafeTensor::from("fc.bias", std::vector<float>{0.1f, -0.2f, -0.7f, 0.3f}, {4}));
  st.tensors.push_back(SafeTensor::from("conv.weight", conv, {3, 3, 3, 2}));
  st.tensors.push_back(SafeTensor::from("conv.bias", std::vector<float>{0.2f, 0.9f, -0.1f}, {3}));
  tinyquant::io::save_safetensors(path, st);
}

}  // namespace

// A unit whose weights decayed next to its bias: quantized without its input scale, export-c
// cannot give its bias an int32 code and says how to fix it; with --input-scale (quantize or
// prune) its weight scale is raised as the layers do from floats, and the export runs.
TEST(Cli, InputScaleRaisesTheWeightScaleADeadUnitsBiasNeeds) {
  const std::string in = kData + "/dead_unit.safetensors";
  write_dead_unit_model(in);
  const std::string plain = kData + "/dead_plain.tqm", fitted = kData + "/dead_fit.tqm";
  const std::string act =
      " --act fc:0.02,0,0.05,0 --act conv:0.03,0,0.1,0 --conv conv:padding=valid";
  ASSERT_EQ(run("quantize " + in + " " + plain).code, 0);
  Result r = run("export-c " + plain + " " + kData + "/dead_plain.h" + act);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("does not fit int32"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--input-scale"), std::string::npos) << r.err;

  r = run("quantize " + in + " " + fitted + " --input-scale fc:0.02 --input-scale 0.03");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("scales of 1 channel raised to fit fc.bias"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scales of 1 channel raised to fit conv.bias"), std::string::npos) << r.out;
  r = run("export-c " + fitted + " " + kData + "/dead_fit.h" + act);
  ASSERT_EQ(r.code, 0) << r.err;

  // The stored scales, against max |w| / 127 (symmetric per channel) and the 2^30 bias bound.
  const tinyquant::io::SafeTensors src = tinyquant::io::load_safetensors(in);
  const tinyquant::io::Model m = tinyquant::io::load_model(fitted);
  for (const auto& [layer, input_scale] :
       std::vector<std::pair<std::string, double>>{{"fc", 0.02}, {"conv", 0.03}}) {
    const std::vector<float> w = src.at(layer + ".weight").as<float>();
    const std::vector<float> b = src.at(layer + ".bias").as<float>();
    const tinyquant::QTensor q = tinyquant::io::to_qtensor(m.find(layer + ".weight"));
    const size_t per = w.size() / b.size();
    for (size_t c = 0; c < b.size(); ++c) {
      float top = 0.0f;
      for (size_t k = 0; k < per; ++k) top = std::max(top, std::fabs(w[c * per + k]));
      const double s = q.params.scales[c];
      EXPECT_LE(std::fabs(b[c]) / (input_scale * s), 1073741824.0) << layer << " " << c;
      if (top > 1e-6f)
        EXPECT_FLOAT_EQ(static_cast<float>(s), top / 127.0f) << layer << " " << c;
      else
        EXPECT_GT(s, top / 127.0) << layer << " " << c;
    }
  }

  // Per-group int4 (groups of 4 along the input axis): the dead row's groups; per tensor: the
  // one scale.
  r = run("quantize " + in + " " + kData +
          "/dead_group.tqm --bits 4 --granularity group --group-size 4 --input-scale fc:0.02");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("scales of 1 channel raised to fit fc.bias"), std::string::npos) << r.out;
  ASSERT_EQ(
      run("export-c " + kData + "/dead_group.tqm " + kData + "/dead_group.h --act fc:0.02,0,0.05,0")
          .code,
      0);
  r = run("quantize " + in + " " + kData +
          "/dead_tensor.tqm --granularity tensor --input-scale fc:1e-9");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fc.weight"), std::string::npos);
  EXPECT_NE(r.out.find("  scale raised to fit fc.bias"), std::string::npos) << r.out;

  // prune takes the same option (2:4 keeps half of the dead unit's weights, so its row is not 0).
  r = run("prune " + in + " " + kData +
          "/dead_pruned.tqm --method nm --n 2 --m 4 --input-scale 0.02");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("scales of 1 channel raised to fit fc.bias"), std::string::npos) << r.out;

  r = run("quantize " + in + " " + fitted + " --input-scale nope:0.02");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--input-scale nope: the input has no 'nope.weight'"), std::string::npos)
      << r.err;
  for (const char* bad : {"fc:0", "fc:-1", "fc:x", "fc:0.02 --input-scale fc:0.03"}) {
    r = run("quantize " + in + " " + fitted + " --input-scale " + bad);
    EXPECT_EQ(r.code, 2) << bad;
  }
}
