{
  "targets": [
    {
      "target_name": "imagebart_native",
      "sources": ["native/tensor.cc", "native/ops.cc", "native/runtime.cc", "native/c10d.cc", "native/generator.cc", "native/addon.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.mjs include)"
      ],
      "libraries": ["<!@(node scripts/libtorch.mjs libs)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "<!@(node scripts/libtorch.mjs defines)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "cflags!": ["-fno-exceptions"]
    }
  ]
}
