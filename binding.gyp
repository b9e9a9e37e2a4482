{
  # The CPU-only addon that `npm install` builds (node-gyp-build) and `npm run build:native`
  # rebuilds. Sources are every csrc/**/*.cc except csrc/cuda/ (the CUDA backend, built only
  # by CMakeLists.txt through `npm run build:cuda`); csrc/core/no_cuda.cc stands in for it.
  # Everything is compiled for the architecture's baseline (no -mavx2): the *_avx2.cc and
  # *_avx512.cc kernels raise their own target by pragma and are chosen at run time
  # (csrc/cpu/isa.h), so the binary loads and runs on any x86-64.
  # OpenBLAS (static, serial) is linked in when scripts/find-openblas.mjs finds it, as the
  # optional KVCAKE_CPU_GEMM=openblas path; without it the addon has its own kernels only.
  "variables": {
    "openblas": "<!(node scripts/find-openblas.mjs)"
  },
  "targets": [
    {
      "target_name": "kvcake",
      "sources": [
        "<!@(node -e \"const fs=require('fs');const out=[];(function walk(d){for(const e of fs.readdirSync(d,{withFileTypes:true}).sort((a,b)=>a.name<b.name?-1:1)){const f=d+'/'+e.name;if(e.isDirectory()){if(f!=='csrc/cuda')walk(f)}else if(f.endsWith('.cc'))out.push(f)}})('csrc');console.log(out.join(' '))\")"
      ],
      "include_dirs": [
        "csrc",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["openblas!=''", {
          "defines": ["KVCAKE_WITH_OPENBLAS=1"],
          "libraries": ["<(openblas)", "-Wl,--exclude-libs,ALL"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }],
        ["OS=='win'", {
          "msvs_settings": {
            "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
          }
        }]
      ]
    }
  ]
}
