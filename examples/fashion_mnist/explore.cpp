// Recipe exploration for the demo's fine-tuned rows: runs variants of the int4 per-group 32 QAT
// and of the 70 % pruning + int8 fine-tune for one seed and prints, per variant and activation
// calibration, the integer-only accuracy on the validation images (what choices are made on)
// and on the test images (reported only).
//
//   fashion_mnist_explore --seed N --cache-dir DIR [--qat LIST] [--prune LIST] [--int8qat LIST]
//                         [--gptq LIST]
//
// "--qat base" runs the demo's recipe (snapped group scales, the last epoch), cached like the
// demo's. Otherwise LIST is comma-separated "epochs:lr:refresh:distill" specs (--qat, --int8qat;
// --qat takes optional further fields ":snap:scale_lr:freeze:keep_best:avg:const": snapped group
// scales (0 / 1), learned (LSQ) group scales with that Adam step size (0: not learned), no re-fit
// or learning in the last epoch (0 / 1), keeping the best epoch (1 by default; 0: the last, as the
// demo), the mean of the master weights over the last N epochs (0: none) and a constant step size
// (1) instead of the cosine decay), or "epochs:lr:keep_best[:sparsity[:ramp[:power]]]" (--prune;
// sparsity 0.7, ramp fraction 0.6 and power 3 by default). The float and 70 % models come from the
// demo's cache (the same keys) and are trained if missing.
// --gptq takes "sequential:mse:act_order[:damp[:qat_epochs[:qat_lr[:qat_minmax[:bias]]]]]" specs:
// int4 per-group 32 GPTQ (snapped group scales, calibrated on the validation images) with the
// layer inputs of the float model (sequential 0), of the already-quantized earlier layers (1) or
// the same with every layer input quantized to int8 and back (2), params_for_mse (1) or min / max
// (0) group fits, act order (1) or not (0), damping (0.01 by default); bias 1 or 2 also reports
// the GPTQ model with bias correction (see below); with qat_epochs > 0 also a QAT (the demo's
// of 2026-11-23: snapped group scales, the last epoch, no label smoothing or weight decay)
// started from the GPTQ weights, at Adam step qat_lr (the training lr by default; cached), its
// group ranges re-fitted from min / max with qat_minmax 1 (not cached).
// --awq takes "grid[:mse[:input]]" specs: AWQ-style input-channel scaling (awq_fold below) of the
// float model before int4 per-group 32 rounding, alpha searched over grid points, min / max (0)
// or MSE (1) group ranges in the search, the first layer scaled too (1: a per-pixel input
// quantizer) or not (0); reported plain and followed by the demo's GPTQ.
// --teacher H1:H2[:last] trains (cached) a 784-H1-H2-10 float model by the float model's recipe,
// kept at its best validation epoch or, with last 1, its last one, and makes it the teacher of
// every distilling fine-tune (--qat's distill field, --floatkd) in place of the float model.
// --floatkd takes "epochs:lr:distill" specs: the float model fine-tuned with distillation alone.
// "--qat base" also reports the demo's QAT weights rounded by the demo's GPTQ.
// --wide-int4 1: every int4 variant on the full grid [-8, 7] instead of the narrow [-7, 7].
// --smooth E and --decay D: every fine-tune (--qat's list, --floatkd, --prune, --int8qat) with
// label smoothing E and decoupled weight decay D (TrainConfig); the float model never.
// --batch B: the same fine-tunes with minibatches of B images (64, the float model's, by default).
// --holdout2 N: the last N of the 55 000 training images become a second held-out set, used for
// nothing but the "val2=" figure that the RESULT lines of report() gain (not the teacher's or
// --awq's); every model (the float one included) trains on the rest and is cached under that
// smaller training count.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "float_mlp.hpp"
#include "int8_mlp.hpp"
#include "model_cache.hpp"
#include "prune_mlp.hpp"
#include "qat_mlp.hpp"
#include "quant_mlp.hpp"
#include "train.hpp"

namespace {

namespace tq = tinyquant;

std::vector<std::vector<double>> parse_list(const std::string& s) {
  std::vector<std::vector<double>> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::vector<double> v;
    std::stringstream is(item);
    std::string f;
    while (std::getline(is, f, ':')) v.push_back(std::strtod(f.c_str(), nullptr));
    out.push_back(v);
  }
  return out;
}

// AWQ-style scaling (Lin et al. 2023) of a float MLP for int4 weights: for layer i, input j gets
// the scale s_j = a_j^alpha / sqrt(max_k a_k^alpha min_k a_k^alpha), a_j = mean |x_j| over the
// calibration inputs x of that layer (floored at 1e-4 of the largest a), alpha from
// {0, 1 / grid, ..., (grid - 1) / grid}. Layer i stores W diag(s) and its inputs are divided by
// s: for i > 0 that is folded into layer i - 1's rows and biases (exact through ReLU; the
// per-row or per-group weight grids of layer i - 1 scale with their rows, its per-tensor int8
// output range does not); for layer 0 it is an input quantizer with one scale per pixel
// (input_scale). alpha minimises the layer's output
// error on x with the weights quantized as the demo's int4 rows are (min / max or MSE ranges,
// snapped group scales): E = sum over rows of d^T (x^T x / n) d, d = W - Q(W diag(s)) diag(s)^-1;
// alpha = 0 (s = 1) is plain rounding, so E never exceeds plain rounding's. Layers are scaled
// from the last one back, each from the float model's activations.
struct AwqFold {
  fmnist::FloatMlp model;
  Eigen::VectorXf input_scale;  // [pixels]; ones unless the first layer was scaled
  std::vector<double> alpha;    // per layer; 0 for a layer left alone
};

AwqFold awq_fold(const fmnist::FloatMlp& mlp, const fmnist::MatrixRM& x_cal,
                 const tq::QuantSpec& spec, int grid, bool mse, bool input_too) {
  AwqFold f{mlp, Eigen::VectorXf::Ones(mlp.layers.front().in_features()),
            std::vector<double>(mlp.layers.size(), 0.0)};
  const std::vector<fmnist::MatrixRM> acts = fmnist::layer_activations(mlp, x_cal);
  for (size_t i = mlp.layers.size(); i-- > (input_too ? 0 : 1);) {
    const Eigen::MatrixXd x = acts[i].cast<double>();
    const Eigen::MatrixXd gram = x.transpose() * x / static_cast<double>(x.rows());
    Eigen::VectorXd a = x.cwiseAbs().colwise().mean().transpose();
    a = a.cwiseMax(1e-4 * a.maxCoeff());
    const fmnist::MatrixRM w = f.model.layers[i].w;
    const tq::Shape shape{w.rows(), w.cols()};
    double best_err = -1.0;
    Eigen::VectorXf best = Eigen::VectorXf::Ones(w.cols());
    for (int k = 0; k < grid; ++k) {
      const double alpha = static_cast<double>(k) / grid;
      Eigen::VectorXd sd = a.array().pow(alpha);
      sd /= std::sqrt(sd.maxCoeff() * sd.minCoeff());
      const Eigen::VectorXf s = sd.cast<float>();
      const fmnist::MatrixRM ws = w * s.asDiagonal();
      const tq::QuantParams p = tq::snap_group_scales(
          mse ? tq::params_for_mse(ws.data(), shape, spec) : tq::params_for(ws.data(), shape, spec),
          shape, ws.data());
      const std::vector<float> dq = tq::dequantize(tq::quantize(ws.data(), shape, p));
      const fmnist::MatrixRM eff =
          Eigen::Map<const fmnist::MatrixRM>(dq.data(), w.rows(), w.cols()) *
          s.cwiseInverse().asDiagonal();
      const Eigen::MatrixXd d = (w - eff).cast<double>();
      const double err = (d * gram).cwiseProduct(d).sum();
      if (best_err < 0.0 || err < best_err) {
        best_err = err;
        best = s;
        f.alpha[i] = alpha;
      }
    }
    f.model.layers[i].w = w * best.asDiagonal();
    if (i == 0) {
      f.input_scale = best;
    } else {
      fmnist::DenseLayer& prev = f.model.layers[i - 1];
      prev.w = best.cwiseInverse().asDiagonal() * prev.w;
      prev.b = prev.b.cwiseQuotient(best);
    }
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const fmnist::FixedEigenBlocking fixed_blocking;  // the demo's float sums
  uint32_t seed = 1;
  std::string cache_dir = ".", qat_list, prune_list, int8_list, gptq_list, awq_list, teacher_spec,
              floatkd_list;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  bool wide_int4 = false;
  float smooth = 0.0f;
  float decay = 0.0f;
  int batch = fmnist::TrainConfig{}.batch;  // the float model's
  int64_t holdout2 = 0;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i], v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--seed") {
      seed = static_cast<uint32_t>(std::stoul(v));
    } else if (a == "--cache-dir") {
      cache_dir = v;
    } else if (a == "--qat") {
      qat_list = v;
    } else if (a == "--prune") {
      prune_list = v;
    } else if (a == "--int8qat") {
      int8_list = v;
    } else if (a == "--gptq") {
      gptq_list = v;
    } else if (a == "--awq") {
      awq_list = v;
    } else if (a == "--teacher") {
      teacher_spec = v;
    } else if (a == "--floatkd") {
      floatkd_list = v;
    } else if (a == "--smooth") {
      smooth = std::stof(v);
    } else if (a == "--decay") {
      decay = std::stof(v);
    } else if (a == "--batch") {
      batch = std::stoi(v);
    } else if (a == "--holdout2") {
      holdout2 = std::stoll(v);
    } else if (a == "--wide-int4") {
      wide_int4 = v == "1";
    } else {
      std::fprintf(stderr, "fashion_mnist_explore: unknown option '%s' (see explore.cpp)\n",
                   a.c_str());
      return 2;
    }
  }
  const fmnist::FashionMnist data = fmnist::load_fashion_mnist(data_dir);
  fmnist::TrainValSplit split = fmnist::split_train_val(data.train, fmnist::kValidationCount, 0);
  // A second held-out set (--holdout2 N): the last N training images, used for nothing but
  // the "val2" figures (no training, no epoch choice, no calibration).
  fmnist::Dataset val2;
  if (holdout2 < 0 || holdout2 >= split.train.size()) {
    std::fprintf(stderr, "fashion_mnist_explore: --holdout2 %lld is not in [0, %lld)\n",
                 static_cast<long long>(holdout2), static_cast<long long>(split.train.size()));
    return 2;
  }
  if (holdout2 > 0) {
    const int64_t kept = split.train.size() - holdout2;
    val2 = fmnist::slice(split.train, kept, holdout2);
    split.train = fmnist::slice(split.train, 0, kept);
  }
  fmnist::TrainConfig c;
  c.seed = seed;
  c.epochs = 20;
  c.schedule = fmnist::LrSchedule::kCosine;
  c.keep_best = true;
  // The fine-tunes' regularization (--smooth, --decay); the float model is trained without.
  fmnist::TrainConfig fine = c;
  fine.label_smoothing = smooth;
  fine.weight_decay = decay;
  fine.batch = batch;
  const std::string reg_tag =
      fmnist::regularization_tag(fine) + (batch != c.batch ? fmt::format("-b{}", batch) : "");
  fmnist::TrainKey key;
  key.sizes = {fmnist::kPixels, 128, 64, fmnist::kClasses};
  key.seed = seed;
  key.epochs = 20;
  key.batch = 64;
  key.lr = c.lr;
  key.train_count = static_cast<uint64_t>(split.train.size());
  key.recipe = "cos-best-eigl1-32k";
  auto load_or = [&](const fmnist::TrainKey& k, auto make) {
    const std::string path = cache_dir + "/fashion_mnist_mlp_" + k.tag() + ".tqmlp";
    if (auto m = fmnist::load_model(path, k)) return std::move(*m);
    fmnist::FloatMlp m = make();
    fmnist::save_model(path, m, k);
    return m;
  };
  const fmnist::FloatMlp mlp = load_or(key, [&] {
    fmnist::FloatMlp m = fmnist::he_init(key.sizes, seed);
    fmnist::train_mlp(&m, split.train, split.val, c);
    return m;
  });
  // A wider float model as the distillation teacher (--teacher H1:H2), trained by the float
  // model's recipe and cached like it; its own accuracy is reported.
  std::optional<fmnist::FloatMlp> teacher;
  if (!teacher_spec.empty()) {
    const std::vector<double> h = parse_list(teacher_spec).at(0);
    fmnist::TrainKey tk = key;
    tk.sizes = {fmnist::kPixels, static_cast<int>(h.at(0)), static_cast<int>(h.at(1)),
                fmnist::kClasses};
    fmnist::TrainConfig tc = c;
    if (h.size() > 2 && h[2] > 0) {  // the last epoch: the validation images choose nothing
      tc.keep_best = false;
      tk.recipe = "cos-last-eigl1-32k";
    }
    teacher = load_or(tk, [&] {
      fmnist::FloatMlp m = fmnist::he_init(tk.sizes, seed);
      fmnist::train_mlp(&m, split.train, split.val, tc);
      return m;
    });
    fmt::print("RESULT seed={} row=teacher variant={} calib=float val={:.2f} test={:.2f}\n", seed,
               fmt::format("{}-{}", fmt::join(tk.sizes, "-"), tk.recipe),
               100.0 * fmnist::accuracy(*teacher, split.val),
               100.0 * fmnist::accuracy(*teacher, data.test));
  }
  const fmnist::FloatMlp* const kd_teacher = teacher ? &*teacher : &mlp;
  const std::vector<fmnist::ActCalibration> calibs = {{fmnist::ActCalibration::kMinMax, 0},
                                                      {fmnist::ActCalibration::kPercentile, 99.99},
                                                      {fmnist::ActCalibration::kPercentile, 99.999},
                                                      {fmnist::ActCalibration::kMse, 0}};
  // " val2=<accuracy>" when there is a second held-out set, else "".
  auto val2_float = [&](const fmnist::FloatMlp& m) {
    return val2.size() > 0 ? fmt::format(" val2={:.2f}", 100.0 * fmnist::accuracy(m, val2)) : "";
  };
  auto val2_quant = [&](const fmnist::QuantMlp& q) {
    return val2.size() > 0
               ? fmt::format(" val2={:.2f}", 100.0 * fmnist::evaluate_quant(q, val2, 0).accuracy)
               : "";
  };
  auto report = [&](const std::string& row, const std::string& variant, const fmnist::FloatMlp& m,
                    const tq::QuantSpec& spec, const fmnist::WeightParamsChoice& wp = {}) {
    fmt::print("RESULT seed={} row={} variant={} calib=float val={:.2f} test={:.2f}{}\n", seed, row,
               variant, 100.0 * fmnist::accuracy(m, split.val),
               100.0 * fmnist::accuracy(m, data.test), val2_float(m));
    for (const fmnist::ActCalibration& cal : calibs) {
      const fmnist::QuantMlp q = fmnist::quantize_mlp(
          m, fmnist::calibrate_ranges(m, split.val.images, cal), spec, false, wp);
      fmt::print("RESULT seed={} row={} variant={} calib={} val={:.2f} test={:.2f}{}\n", seed, row,
                 variant, cal.tag(), 100.0 * fmnist::evaluate_quant(q, split.val, 0).accuracy,
                 100.0 * fmnist::evaluate_quant(q, data.test, 0).accuracy, val2_quant(q));
    }
    std::fflush(stdout);
  };
  tq::QuantSpec int4_group = tq::QuantSpec::int4_per_group(32, 1);
  if (wide_int4) int4_group.narrow_range = false;  // [-8, 7] instead of [-7, 7]
  const tq::QuantSpec int8_channel = tq::QuantSpec::int8_weights_per_channel(0);
  auto printer = [](const fmnist::EpochStats& s) {
    fmt::print("  epoch {} val {:.2f} {:.1f} s\n", s.epoch, 100.0 * s.val_accuracy, s.seconds);
    std::fflush(stdout);
  };
  if (!qat_list.empty() || !gptq_list.empty()) {
    report("int4g32", "ptq", mlp, int4_group);
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    report("int4g32", "ptq-snap", mlp, int4_group, snapped);
  }
  if (qat_list == "base" || holdout2 > 0) report("float", "base", mlp, int8_channel);
  if (qat_list == "base") {
    // The demo's QAT (fmnist::demo_qat), from the float model's recipe.
    const fmnist::DemoQat q = fmnist::demo_qat(c, c.lr);
    const fmnist::TrainConfig& ft = q.train;
    fmnist::TrainKey k = key;
    k.epochs = static_cast<uint32_t>(ft.epochs);
    k.lr = ft.lr;
    // The demo's key; on the wide grid a model of its own.
    k.recipe =
        fmnist::demo_qat_recipe(q, fmt::format("from-e{}-lr{}-{}", key.epochs, key.lr, key.recipe),
                                wide_int4 ? "qat-int4w" : "qat-int4");
    const fmnist::FloatMlp qat = load_or(k, [&] {
      fmnist::FloatMlp m = mlp;
      fmnist::qat_finetune(&m, split.train, split.val, ft, int4_group, q.qat, printer);
      return m;
    });
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    const std::string base_name = fmt::format("e{}-lr{}-r{}-kd0-snap1-last{}", ft.epochs, ft.lr,
                                              q.qat.refresh_every, fmnist::regularization_tag(ft));
    report("qat4", base_name, qat, int4_group, snapped);
    // The QAT weights rounded by the demo's GPTQ instead of to nearest.
    const fmnist::GptqMlp g =
        fmnist::gptq_mlp(qat, split.val.images, int4_group, fmnist::demo_gptq_options(),
                         fmnist::GptqInputs::kSequential);
    fmnist::WeightParamsChoice given;
    given.given = &g.params;
    report("qat4", base_name + "-gptq", g.model, int4_group, given);
    qat_list.clear();
  }
  for (const std::vector<double>& v : parse_list(qat_list)) {
    fmnist::TrainConfig ft = fine;
    ft.epochs = static_cast<int>(v.at(0));
    ft.lr = static_cast<float>(v.at(1));
    ft.keep_best = false;
    fmnist::QatConfig qc;
    qc.refresh_every = static_cast<int64_t>(v.at(2));
    auto field = [&](size_t i) { return v.size() > i ? v[i] : 0.0; };
    qc.keep_best = v.size() <= 7 || v[7] > 0;
    if (field(3) > 0) {
      ft.teacher = kd_teacher;
      ft.distill_weight = static_cast<float>(v[3]);
    }
    qc.snap_scales = field(4) > 0;
    qc.learn_scales = field(5) > 0;
    if (qc.learn_scales) qc.scale_lr = static_cast<float>(v[5]);
    qc.freeze_last_epoch = field(6) > 0;
    qc.average_last_epochs = static_cast<int>(field(8));
    if (field(9) > 0) ft.schedule = fmnist::LrSchedule::kConstant;
    fmnist::FloatMlp m = mlp;
    const std::vector<tq::QuantParams> params =
        fmnist::qat_finetune(&m, split.train, split.val, ft, int4_group, qc, printer);
    fmnist::WeightParamsChoice wp;
    wp.given = &params;
    report("qat4",
           fmt::format("e{}-lr{}-r{}-kd{}-snap{}-lsq{}-freeze{}-{}-avg{}-const{}", ft.epochs, ft.lr,
                       qc.refresh_every, field(3), field(4), field(5), field(6),
                       qc.keep_best ? "kb" : "last", field(8), field(9)) +
               reg_tag,
           m, int4_group, wp);
  }
  // The float model fine-tuned with distillation alone (no quantization), "epochs:lr:distill":
  // what the teacher gives without QAT.
  for (const std::vector<double>& v : parse_list(floatkd_list)) {
    fmnist::TrainConfig ft = fine;
    ft.epochs = static_cast<int>(v.at(0));
    ft.lr = static_cast<float>(v.at(1));
    ft.keep_best = false;
    ft.teacher = kd_teacher;
    ft.distill_weight = static_cast<float>(v.at(2));
    fmnist::FloatMlp m = mlp;
    fmnist::train_mlp(&m, split.train, split.val, ft, printer);
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    report("floatkd", fmt::format("e{}-lr{}-kd{}{}", ft.epochs, ft.lr, ft.distill_weight, reg_tag),
           m, int4_group, snapped);
  }
  for (const std::vector<double>& v : parse_list(awq_list)) {
    const int grid = static_cast<int>(v.at(0));
    const bool mse = v.size() > 1 && v[1] > 0, input_too = v.size() > 2 && v[2] > 0;
    if (grid < 1 || grid != v[0]) {
      fmt::print(stderr, "--awq: grid {} must be an integer >= 1\n", v[0]);
      return 2;
    }
    const AwqFold f = awq_fold(mlp, split.val.images, int4_group, grid, mse, input_too);
    fmt::print("awq alpha per layer: {}\n", fmt::join(f.alpha, " "));
    // The images divided by the first layer's scales: an input quantizer with one scale per
    // pixel, in_scale * s_j (all 1 unless input_too).
    fmnist::Dataset val = split.val, test = data.test;
    val.images = val.images * f.input_scale.cwiseInverse().asDiagonal();
    test.images = test.images * f.input_scale.cwiseInverse().asDiagonal();
    const std::string name =
        fmt::format("awq-g{}-mse{}-in{}", grid, mse ? 1 : 0, input_too ? 1 : 0);
    auto print = [&](const std::string& variant, const fmnist::FloatMlp& m,
                     const fmnist::WeightParamsChoice& wp) {
      const fmnist::QuantMlp q =
          fmnist::quantize_mlp(m, fmnist::calibrate_ranges(m, val.images), int4_group, false, wp);
      fmt::print("RESULT seed={} row=int4g32 variant={} calib=minmax val={:.2f} test={:.2f}\n",
                 seed, variant, 100.0 * fmnist::evaluate_quant(q, val, 0).accuracy,
                 100.0 * fmnist::evaluate_quant(q, test, 0).accuracy);
      std::fflush(stdout);
    };
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    print(name, f.model, snapped);
    const fmnist::GptqMlp g =
        fmnist::gptq_mlp(f.model, val.images, int4_group, fmnist::demo_gptq_options(),
                         fmnist::GptqInputs::kSequential);
    fmnist::WeightParamsChoice given;
    given.given = &g.params;
    print(name + "-gptq", g.model, given);
  }
  for (const std::vector<double>& v : parse_list(gptq_list)) {
    tq::GptqOptions go = fmnist::demo_gptq_options();  // snapped; the rest as the spec says
    go.mse_params = v.at(1) > 0;
    go.act_order = v.at(2) > 0;
    if (v.size() > 3) go.damp = v[3];
    const int source = static_cast<int>(v.at(0));
    if (source < 0 || source > 2 || source != v[0]) {
      fmt::print(stderr, "--gptq: layer inputs {} must be 0 (float), 1 (sequential) or 2 (int8)\n",
                 v[0]);
      return 2;
    }
    const auto inputs = static_cast<fmnist::GptqInputs>(source);
    const int qat_epochs = v.size() > 4 ? static_cast<int>(v[4]) : 0;
    const float qat_lr = v.size() > 5 ? static_cast<float>(v[5]) : c.lr;
    const auto t0 = std::chrono::steady_clock::now();
    const fmnist::GptqMlp g = fmnist::gptq_mlp(mlp, split.val.images, int4_group, go, inputs);
    const std::string name = fmt::format("seq{}-mse{}-act{}-damp{}", v[0], v[1], v[2], go.damp);
    fmt::print("gptq {}: {:.2f} s\n", name,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    fmnist::WeightParamsChoice wp;
    wp.given = &g.params;
    report("int4g32", "gptq-" + name, g.model, int4_group, wp);
    // Bias correction after GPTQ: each layer's bias takes the mean, over the validation images,
    // of (float layer - GPTQ layer) pre-activations; the GPTQ layer reads the GPTQ model's
    // inputs, the float layer the same inputs (1) or the float model's (2).
    if (const int bc_mode = v.size() > 7 ? static_cast<int>(v[7]) : 0; bc_mode > 0) {
      fmnist::FloatMlp bc = g.model;
      fmnist::MatrixRM xq = split.val.images, xf = split.val.images;
      for (size_t i = 0; i < bc.layers.size(); ++i) {
        const fmnist::MatrixRM yf = (bc_mode == 1 ? xq : xf) * mlp.layers[i].w.transpose();
        const fmnist::MatrixRM yq = xq * bc.layers[i].w.transpose();
        bc.layers[i].b += (yf - yq).colwise().mean().transpose();
        xq = fmnist::layer_output(bc, i, xq);
        xf = fmnist::layer_output(mlp, i, xf);
      }
      report("int4g32", fmt::format("gptq-{}-bc{}", name, bc_mode), bc, int4_group, wp);
    }
    if (qat_epochs <= 0) continue;
    // The QAT of 2026-11-23 (unregularized) started from the GPTQ weights (group re-fits from
    // min / max with minmax); *params: the parameters it ends with.
    auto qat_from_gptq = [&](bool minmax, std::vector<tq::QuantParams>* params) {
      fmnist::TrainConfig ft = c;
      ft.epochs = qat_epochs;
      ft.lr = qat_lr;
      ft.keep_best = false;
      fmnist::QatConfig qc;
      qc.snap_scales = true;
      qc.minmax_fits = minmax;
      fmnist::FloatMlp m = g.model;
      *params = fmnist::qat_finetune(&m, split.train, split.val, ft, int4_group, qc, printer);
      return m;
    };
    if (v.size() > 6 && v[6] > 0) {  // not cached
      std::vector<tq::QuantParams> params;
      const fmnist::FloatMlp m = qat_from_gptq(true, &params);
      fmnist::WeightParamsChoice given;
      given.given = &params;
      report(
          "qat4",
          fmt::format("from-gptq-{}-e{}-lr{}-r100-kd0-snap1-minmax-last", name, qat_epochs, qat_lr),
          m, int4_group, given);
      continue;
    }
    fmnist::TrainKey k = key;
    k.epochs = static_cast<uint32_t>(qat_epochs);
    k.lr = qat_lr;
    k.recipe =
        fmt::format("qat-int4{}-g32-r100-snap-cos_from-gptq-{}_e20-lr0.001-cos-best-eigl1-32k",
                    wide_int4 ? "w" : "", name);
    const fmnist::FloatMlp qat = load_or(k, [&] {
      std::vector<tq::QuantParams> unused;  // the cache keeps the weights; re-fitted below
      return qat_from_gptq(false, &unused);
    });
    fmnist::WeightParamsChoice snapped;
    snapped.snap = true;
    report("qat4",
           fmt::format("from-gptq-{}-e{}-lr{}-r100-kd0-snap1-last", name, qat_epochs, qat_lr), qat,
           int4_group, snapped);
  }
  for (const std::vector<double>& pv : parse_list(prune_list)) {
    fmnist::TrainConfig ft = fine;
    ft.epochs = static_cast<int>(pv.at(0));
    ft.lr = static_cast<float>(pv.at(1));
    ft.keep_best = pv.at(2) > 0;
    fmnist::PruneConfig pc;
    pc.sparsity = pv.size() > 3 ? pv[3] : 0.7;
    if (pv.size() > 4) pc.ramp_fraction = pv[4];
    if (pv.size() > 5) pc.power = pv[5];
    const int pct = static_cast<int>(std::lround(100.0 * pc.sparsity));
    fmnist::TrainKey k = key;
    k.epochs = static_cast<uint32_t>(ft.epochs);
    k.batch = static_cast<uint32_t>(ft.batch);
    k.lr = ft.lr;
    k.recipe =
        fmt::format("global{}-f{}-p{}-r{}-cos{}{}_from-e20-lr0.001-cos-best-eigl1-32k", pct,
                    pc.frequency, pc.power, pc.ramp_fraction, ft.keep_best ? "-best" : "", reg_tag);
    const fmnist::FloatMlp pruned = load_or(k, [&] {
      fmnist::FloatMlp m = mlp;
      fmnist::prune_finetune(&m, split.train, split.val, ft, pc, printer);
      return m;
    });
    const std::string pname = fmt::format("e{}-lr{}-kb{}-r{}-p{}{}", ft.epochs, ft.lr, pv[2],
                                          pc.ramp_fraction, pc.power, reg_tag);
    const std::string prow = fmt::format("p{}int8", pct);
    report(prow, pname, pruned, int8_channel);
    const std::vector<tq::Mask> masks = fmnist::global_masks(pruned, pc.sparsity);
    for (const std::vector<double>& v : parse_list(int8_list)) {
      fmnist::TrainConfig qt = fine;
      qt.epochs = static_cast<int>(v.at(0));
      qt.lr = static_cast<float>(v.at(1));
      qt.keep_best = false;
      fmnist::QatConfig qc;
      qc.refresh_every = static_cast<int64_t>(v.at(2));
      qc.keep_best = true;
      qc.masks = &masks;
      if (v.size() > 3 && v[3] > 0) {
        qt.teacher = &mlp;
        qt.distill_weight = static_cast<float>(v[3]);
      }
      fmnist::FloatMlp m = pruned;
      fmnist::qat_finetune(&m, split.train, split.val, qt, int8_channel, qc, printer);
      fmt::print("sparsity {:.4f}\n", fmnist::weight_sparsity(m));
      report(prow,
             fmt::format("{}+qat8-e{}-lr{}-r{}-kd{}", pname, qt.epochs, qt.lr, qc.refresh_every,
                         v.size() > 3 ? v[3] : 0.0),
             m, int8_channel);
    }
  }
  return 0;
}
