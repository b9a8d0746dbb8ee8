// Standalone micro-benchmark for 06-cpu-layers (docs/caffe-speed.md): Caffe's ReLU backward loop
// and three rewrites of it over 819,200 floats (one ResNet-50 activation blob's worth), written
// to another array and in place (as Caffe's in-place ReLU does), on random signs and on zeros.
// Built as Caffe builds (-O3, no -march) with and without -fno-trapping-math:
//   g++ -std=c++17 -O3 bench/relu_backward_micro.cpp -o /tmp/relu && /tmp/relu
//   g++ -std=c++17 -O3 -fno-trapping-math bench/relu_backward_micro.cpp -o /tmp/relu && /tmp/relu
// Add -fopt-info-vec-missed to see why a loop stays scalar ("control flow in loop").
#include <chrono>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

using Fn = void (*)(int, const float*, const float*, float*, float);

// Caffe's relu_layer.cpp
__attribute__((noinline)) void caffe_form(int n, const float* x, const float* dy, float* dx,
                                          float slope) {
  for (int i = 0; i < n; ++i) dx[i] = dy[i] * ((x[i] > 0) + slope * (x[i] <= 0));
}
__attribute__((noinline)) void select_form(int n, const float* x, const float* dy, float* dx,
                                           float slope) {
  for (int i = 0; i < n; ++i) dx[i] = x[i] > 0 ? dy[i] : slope * dy[i];
}
__attribute__((noinline)) void factor_form(int n, const float* x, const float* dy, float* dx,
                                           float slope) {
  for (int i = 0; i < n; ++i) dx[i] = dy[i] * (x[i] > 0 ? 1.0f : slope);
}
__attribute__((noinline)) void arith_form(int n, const float* x, const float* dy, float* dx,
                                          float slope) {
  for (int i = 0; i < n; ++i) {
    const float pos = float(x[i] > 0);
    dx[i] = dy[i] * (pos + slope * (1.0f - pos));
  }
}

int main() {
  const int n = 819200, reps = 50;
  std::vector<float> x(n), zeros(n, 0.0f), dy(n), dx(n);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (int i = 0; i < n; ++i) { x[i] = normal(rng); dy[i] = normal(rng); }
  const std::pair<const char*, Fn> forms[] = {{"caffe", caffe_form}, {"select", select_form},
                                               {"factor", factor_form}, {"arith", arith_form}};
  for (const auto& [name, f] : forms) {
    for (const bool in_place : {false, true}) {
      for (const bool random : {true, false}) {
        const float* data = random ? x.data() : zeros.data();
        float* out = in_place ? dy.data() : dx.data();
        f(n, data, dy.data(), out, 0.0f);
        const auto t0 = std::chrono::steady_clock::now();
        for (int k = 0; k < reps; ++k) f(n, data, dy.data(), out, 0.0f);
        const double ms = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count() / reps * 1e3;
        std::printf("%-7s %-12s %-6s %.3f ms\n", name, in_place ? "in place" : "other array",
                    random ? "random" : "zeros", ms);
      }
    }
  }
}
