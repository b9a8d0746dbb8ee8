// pycount 04-batched-conv and 05-dnnl-conv: the chunked CPU convolution and the oneDNN one agree
// with Caffe's per-image path and pass Caffe's gradient check when the batch splits into uneven
// chunks (5 images: 2 + 2 + 1, 3 + 2, 1 x 5, one chunk of 5). Caffe's own convolution tests use 2
// images, so they cannot split unevenly. Each case also runs with its weights frozen (only the
// bias and bottom gradients, a separate branch of both patches).
// tools/caffe_selftest.sh copies this file into the build's src/caffe/test/ and builds it with
// Caffe's test_convolution_layer.cpp and test_deconvolution_layer.cpp.
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/conv_layer.hpp"
#include "caffe/layers/deconv_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

struct ChunkCase {
  bool deconv;
  int kernel, stride, pad, dilation, group, num_output;
  bool bias;
};

// conv 3x3; strided grouped; dilated; 1x1 (im2col skipped) grouped; 1x1 strided (not skipped);
// deconv as fcrn's upsampling (4x4 stride 2, depthwise); deconv grouped; deconv 1x1
static const ChunkCase kCases[] = {
  {false, 3, 1, 1, 1, 1, 6, true},
  {false, 3, 2, 1, 1, 2, 6, true},
  {false, 3, 1, 2, 2, 1, 3, false},
  {false, 1, 1, 0, 1, 2, 4, true},
  {false, 1, 2, 0, 1, 1, 5, true},
  {true, 4, 2, 1, 1, 4, 4, false},
  {true, 3, 1, 1, 1, 2, 6, true},
  {true, 1, 1, 0, 1, 1, 3, true},
};

// (CAFFE_CONV_CHUNK_MB, CAFFE_CONV_CHUNK_IMAGES, CAFFE_CONV_CHUNK_COLS, CAFFE_CONV_ENGINE);
// "" = unset. The first is the reference (gemm, per image); P = 42 output pixels here, so the
// gemm default makes one chunk of 5, 100 columns chunks of 3 + 2, 20 KB chunks of 2 + 2 + 1
// (float; double: per image). The last runs oneDNN (double falls back to gemm per image).
static const int kNumVars = 4;
static const char* kSettings[][kNumVars] = {
  {"0", "", "", "gemm"}, {"", "", "", "gemm"}, {"", "1", "", "gemm"}, {"", "2", "", "gemm"},
  {"", "3", "", "gemm"}, {"", "", "100", "gemm"}, {"0.02", "", "", "gemm"}, {"", "", "", "dnnl"},
};
static const char* kVars[kNumVars] = {
  "CAFFE_CONV_CHUNK_MB", "CAFFE_CONV_CHUNK_IMAGES", "CAFFE_CONV_CHUNK_COLS",
  "CAFFE_CONV_ENGINE"};

static void SetChunkEnv(const char* const values[kNumVars]) {
  for (int i = 0; i < kNumVars; ++i) {
    if (*values[i]) { setenv(kVars[i], values[i], 1); } else { unsetenv(kVars[i]); }
  }
}

template <typename TypeParam>
class BatchedConvTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  BatchedConvTest() : bottom_(new Blob<Dtype>(5, 4, 7, 6)), top_(new Blob<Dtype>()) {
    // the settings of the caller (caffe_selftest.sh runs every test under several settings)
    for (int i = 0; i < kNumVars; ++i) {
      const char* v = getenv(kVars[i]);
      saved_[i] = v ? v : "";
    }
    FillerParameter filler_param;
    filler_param.set_std(1);
    GaussianFiller<Dtype> filler(filler_param);
    filler.Fill(bottom_);
    bottoms_.push_back(bottom_);
    tops_.push_back(top_);
  }
  virtual ~BatchedConvTest() {
    const char* saved[kNumVars] = {saved_[0].c_str(), saved_[1].c_str(), saved_[2].c_str(),
                                   saved_[3].c_str()};
    SetChunkEnv(saved);
    delete bottom_;
    delete top_;
  }

  shared_ptr<Layer<Dtype> > MakeLayer(const ChunkCase& c) {
    LayerParameter param;
    ConvolutionParameter* cp = param.mutable_convolution_param();
    cp->add_kernel_size(c.kernel);
    cp->add_stride(c.stride);
    cp->add_pad(c.pad);
    cp->add_dilation(c.dilation);
    cp->set_group(c.group);
    cp->set_num_output(c.num_output);
    cp->set_bias_term(c.bias);
    cp->mutable_weight_filler()->set_type("gaussian");
    cp->mutable_weight_filler()->set_std(0.5);
    cp->mutable_bias_filler()->set_type("gaussian");
    cp->mutable_bias_filler()->set_std(0.5);
    shared_ptr<Layer<Dtype> > layer;
    if (c.deconv) {
      layer.reset(new DeconvolutionLayer<Dtype>(param));
    } else {
      layer.reset(new ConvolutionLayer<Dtype>(param));
    }
    layer->SetUp(bottoms_, tops_);
    return layer;
  }

  // top, bottom diff and parameter diffs after one forward and one backward pass
  std::vector<std::vector<Dtype> > Pass(Layer<Dtype>* layer, const std::vector<Dtype>& top_diff) {
    std::vector<std::vector<Dtype> > out;
    layer->Forward(bottoms_, tops_);
    out.push_back(std::vector<Dtype>(top_->cpu_data(), top_->cpu_data() + top_->count()));
    std::copy(top_diff.begin(), top_diff.end(), top_->mutable_cpu_diff());
    for (int i = 0; i < layer->blobs().size(); ++i) {
      caffe_set(layer->blobs()[i]->count(), Dtype(0), layer->blobs()[i]->mutable_cpu_diff());
    }
    caffe_set(bottom_->count(), Dtype(7), bottom_->mutable_cpu_diff());  // must be overwritten
    layer->Backward(tops_, std::vector<bool>(1, true), bottoms_);
    out.push_back(std::vector<Dtype>(bottom_->cpu_diff(), bottom_->cpu_diff() + bottom_->count()));
    for (int i = 0; i < layer->blobs().size(); ++i) {
      const Blob<Dtype>& b = *layer->blobs()[i];
      out.push_back(std::vector<Dtype>(b.cpu_diff(), b.cpu_diff() + b.count()));
    }
    return out;
  }

  std::string saved_[kNumVars];
  Blob<Dtype>* const bottom_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> bottoms_;
  vector<Blob<Dtype>*> tops_;
};

TYPED_TEST_CASE(BatchedConvTest, TestDtypesAndDevices);

TYPED_TEST(BatchedConvTest, TestChunksAgreeWithPerImage) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU) { return; }
  // float: 1e-4 as Caffe's own convolution tests (a weight gradient here sums 210 products of
  // magnitude up to ~5 in an order that depends on the chunking); double: 1e-10
  const Dtype tol = sizeof(Dtype) == 4 ? 1e-4 : 1e-10;
  const int num_cases = sizeof(kCases) / sizeof(kCases[0]);
  for (int run = 0; run < 2 * num_cases; ++run) {
    // runs num_cases.. freeze the weights: bias and bottom gradients only
    const int ci = run % num_cases;
    shared_ptr<Layer<Dtype> > layer = this->MakeLayer(kCases[ci]);
    if (run >= num_cases) { layer->set_param_propagate_down(0, false); }
    Blob<Dtype> diff(this->top_->shape());
    FillerParameter filler_param;
    filler_param.set_std(1);
    GaussianFiller<Dtype> filler(filler_param);
    filler.Fill(&diff);
    std::vector<Dtype> top_diff(diff.cpu_data(), diff.cpu_data() + diff.count());
    std::vector<std::vector<Dtype> > ref;
    for (int si = 0; si < sizeof(kSettings) / sizeof(kSettings[0]); ++si) {
      SetChunkEnv(kSettings[si]);
      std::vector<std::vector<Dtype> > got = this->Pass(layer.get(), top_diff);
      if (si == 0) { ref = got; continue; }
      ASSERT_EQ(ref.size(), got.size());
      for (int a = 0; a < ref.size(); ++a) {
        ASSERT_EQ(ref[a].size(), got[a].size());
        for (int j = 0; j < ref[a].size(); ++j) {
          const Dtype scale = std::max(Dtype(1), std::fabs(ref[a][j]));
          EXPECT_NEAR(ref[a][j], got[a][j], tol * scale)
              << "case " << ci << (run >= num_cases ? " (weights frozen)" : "")
              << " setting MB='" << kSettings[si][0] << "' images='" << kSettings[si][1]
              << "' cols='" << kSettings[si][2] << "' engine='" << kSettings[si][3]
              << "' array " << a
              << " index " << j;
        }
      }
    }
  }
}

TYPED_TEST(BatchedConvTest, TestGradientUnevenChunks) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU) { return; }
  // double only: the whole-top objective (sum of squares over 5 images) is too coarse in float
  // for a finite difference at Caffe's thresholds, and the exhaustive check (one top element
  // at a time) takes minutes at 5 images. Caffe's own float gradient checks run chunked too.
  if (sizeof(Dtype) == 4) { return; }
  const int picks[] = {1, 2, 5};  // strided grouped conv, dilated conv, fcrn-like deconv
  for (int pi = 0; pi < 3; ++pi) {
    const char* chunks_of_2[kNumVars] = {"", "2", "", "gemm"};  // chunks of 2 + 2 + 1
    SetChunkEnv(chunks_of_2);
    shared_ptr<Layer<Dtype> > layer = this->MakeLayer(kCases[picks[pi]]);
    GradientChecker<Dtype> checker(1e-2, 1e-3);
    // objective: half the sum of squares of the whole top (the exhaustive check, one top
    // element at a time, takes minutes at 5 images)
    checker.CheckGradient(layer.get(), this->bottoms_, this->tops_);
  }
}

}  // namespace caffe
