// Standalone micro-benchmark for 05-dnnl-conv (docs/caffe-speed.md): one 3x3 pad-1 convolution,
// oneDNN (format_tag::any + reorders from/to NCHW) against im2col + OpenBLAS sgemm per image
// (Caffe's path), forward, weight gradient (+ bias), data gradient; best of R repetitions.
//   g++ -O2 -march=native -std=c++14 bench/dnnl_conv_micro.cpp -o /tmp/micro -ldnnl -lopenblas
//   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/micro N C_IN C_OUT SIDE [R]
#include <dnnl.hpp>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <unordered_map>
using namespace dnnl;
using tag = memory::format_tag; using dt = memory::data_type;
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
static void im2col(const float* im, int C, int H, int W, float* col) {
  for (int c = 0; c < C; ++c) for (int kh = 0; kh < 3; ++kh) for (int kw = 0; kw < 3; ++kw) {
    float* o = col + ((c * 3 + kh) * 3 + kw) * H * W;
    for (int y = 0; y < H; ++y) { int iy = y + kh - 1; for (int x = 0; x < W; ++x) { int ix = x + kw - 1;
      *o++ = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? im[(c * H + iy) * W + ix] : 0.f; } } }
}
static void col2im(const float* col, int C, int H, int W, float* im) {
  std::fill(im, im + C * H * W, 0.f);
  for (int c = 0; c < C; ++c) for (int kh = 0; kh < 3; ++kh) for (int kw = 0; kw < 3; ++kw) {
    const float* o = col + ((c * 3 + kh) * 3 + kw) * H * W;
    for (int y = 0; y < H; ++y) { int iy = y + kh - 1; for (int x = 0; x < W; ++x, ++o) { int ix = x + kw - 1;
      if (iy >= 0 && iy < H && ix >= 0 && ix < W) im[(c * H + iy) * W + ix] += *o; } } }
}
int main(int argc, char** argv) {
  int N = atoi(argv[1]), Ci = atoi(argv[2]), Co = atoi(argv[3]), H = atoi(argv[4]), W = H, reps = argc > 5 ? atoi(argv[5]) : 5;
  int P = H * W, K = Ci * 9;
  std::vector<float> x(N * Ci * P), w(Co * K), b(Co), y(N * Co * P), dy(N * Co * P), dx(N * Ci * P), dw(Co * K), db(Co), col(K * P);
  for (auto& v : x) v = rand() / (float)RAND_MAX - .5f; for (auto& v : w) v = rand() / (float)RAND_MAX - .5f;
  for (auto& v : dy) v = rand() / (float)RAND_MAX - .5f; for (auto& v : b) v = .1f;
  // GEMM path
  double tf = 1e9, tbd = 1e9, tbw = 1e9;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    for (int n = 0; n < N; ++n) { im2col(&x[n * Ci * P], Ci, H, W, col.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, P, K, 1.f, w.data(), K, col.data(), P, 0.f, &y[n * Co * P], P);
      for (int o = 0; o < Co; ++o) for (int p = 0; p < P; ++p) y[(n * Co + o) * P + p] += b[o]; }
    double t1 = now();
    std::fill(dw.begin(), dw.end(), 0.f);
    for (int n = 0; n < N; ++n) { im2col(&x[n * Ci * P], Ci, H, W, col.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, K, P, 1.f, &dy[n * Co * P], P, col.data(), P, 1.f, dw.data(), K);
      for (int o = 0; o < Co; ++o) { float s = 0; for (int p = 0; p < P; ++p) s += dy[(n * Co + o) * P + p]; db[o] += s; } }
    double t2 = now();
    for (int n = 0; n < N; ++n) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, Co, 1.f, w.data(), K, &dy[n * Co * P], P, 0.f, col.data(), P);
      col2im(col.data(), Ci, H, W, &dx[n * Ci * P]); }
    double t3 = now();
    tf = std::min(tf, t1 - t0); tbw = std::min(tbw, t2 - t1); tbd = std::min(tbd, t3 - t2);
  }
  std::vector<float> yg = y, dxg = dx, dwg = dw;
  printf("N%d %d->%d %dx%d  gemm  fwd %.2f ms  bwd-w %.2f ms  bwd-d %.2f ms  total %.2f\n", N, Ci, Co, H, W, tf*1e3, tbw*1e3, tbd*1e3, (tf+tbw+tbd)*1e3);
  // oneDNN
  engine eng(engine::kind::cpu, 0); stream s(eng);
  memory::dims xd{N, Ci, H, W}, wd{Co, Ci, 3, 3}, bd{Co}, yd{N, Co, H, W}, st{1, 1}, pd{1, 1};
  auto xa = memory::desc(xd, dt::f32, tag::any), wa = memory::desc(wd, dt::f32, tag::any), ya = memory::desc(yd, dt::f32, tag::any), ba = memory::desc(bd, dt::f32, tag::x);
  auto fd = convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, xa, wa, ba, ya, st, pd, pd);
  auto fpd = convolution_forward::primitive_desc(fd, eng);
  auto bdd = convolution_backward_data::desc(algorithm::convolution_direct, xa, wa, ya, st, pd, pd);
  auto bdpd = convolution_backward_data::primitive_desc(bdd, eng, fpd);
  auto bwd = convolution_backward_weights::desc(algorithm::convolution_direct, xa, wa, ba, ya, st, pd, pd);
  auto bwpd = convolution_backward_weights::primitive_desc(bwd, eng, fpd);
  printf("impl fwd %s bwd-d %s bwd-w %s\n", fpd.impl_info_str(), bdpd.impl_info_str(), bwpd.impl_info_str());
  memory xu({xd, dt::f32, tag::nchw}, eng, x.data()), wu({wd, dt::f32, tag::oihw}, eng, w.data()), bu({bd, dt::f32, tag::x}, eng, b.data()),
      yu({yd, dt::f32, tag::nchw}, eng, y.data()), dyu({yd, dt::f32, tag::nchw}, eng, dy.data()), dxu({xd, dt::f32, tag::nchw}, eng, dx.data()),
      dwu({wd, dt::f32, tag::oihw}, eng, dw.data()), dbu({bd, dt::f32, tag::x}, eng, db.data());
  memory xi(fpd.src_desc(), eng), wi(fpd.weights_desc(), eng), yi(fpd.dst_desc(), eng), dyi(bdpd.diff_dst_desc(), eng), dxi(bdpd.diff_src_desc(), eng),
      dyw(bwpd.diff_dst_desc(), eng), xw(bwpd.src_desc(), eng), dwi(bwpd.diff_weights_desc(), eng), wbd(bdpd.weights_desc(), eng);
  convolution_forward cf(fpd); convolution_backward_data cbd(bdpd); convolution_backward_weights cbw(bwpd);
  tf = tbd = tbw = 1e9;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    reorder(xu, xi).execute(s, xu, xi); reorder(wu, wi).execute(s, wu, wi);
    cf.execute(s, {{DNNL_ARG_SRC, xi}, {DNNL_ARG_WEIGHTS, wi}, {DNNL_ARG_BIAS, bu}, {DNNL_ARG_DST, yi}});
    reorder(yi, yu).execute(s, yi, yu); s.wait();
    double t1 = now();
    reorder(dyu, dyw).execute(s, dyu, dyw); reorder(xu, xw).execute(s, xu, xw);
    cbw.execute(s, {{DNNL_ARG_SRC, xw}, {DNNL_ARG_DIFF_DST, dyw}, {DNNL_ARG_DIFF_WEIGHTS, dwi}, {DNNL_ARG_DIFF_BIAS, dbu}});
    reorder(dwi, dwu).execute(s, dwi, dwu); s.wait();
    double t2 = now();
    reorder(dyu, dyi).execute(s, dyu, dyi); reorder(wu, wbd).execute(s, wu, wbd);
    cbd.execute(s, {{DNNL_ARG_DIFF_DST, dyi}, {DNNL_ARG_WEIGHTS, wbd}, {DNNL_ARG_DIFF_SRC, dxi}});
    reorder(dxi, dxu).execute(s, dxi, dxu); s.wait();
    double t3 = now();
    tf = std::min(tf, t1 - t0); tbw = std::min(tbw, t2 - t1); tbd = std::min(tbd, t3 - t2);
  }
  double e1 = 0, e2 = 0, e3 = 0;
  for (size_t i = 0; i < y.size(); ++i) e1 = std::max(e1, (double)std::abs(y[i] - yg[i]));
  for (size_t i = 0; i < dx.size(); ++i) e2 = std::max(e2, (double)std::abs(dx[i] - dxg[i]));
  for (size_t i = 0; i < dw.size(); ++i) e3 = std::max(e3, (double)std::abs(dw[i] - dwg[i]));
  printf("N%d %d->%d %dx%d  dnnl  fwd %.2f ms  bwd-w %.2f ms  bwd-d %.2f ms  total %.2f   maxdiff y %.2g dx %.2g dw %.2g\n", N, Ci, Co, H, W, tf*1e3, tbw*1e3, tbd*1e3, (tf+tbw+tbd)*1e3, e1, e2, e3);
}
