# A thin wrapper around CMake, as neovim's is.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMOONWATCH_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# Both builds run the whole suite; the sanitizer one fails on any report.
test: build asan
	cd $(BUILD) && ctest --output-on-failure
	cd $(ASAN_BUILD) && ctest --output-on-failure

bench: build
	bench/run.sh

# libFuzzer on the server's request path (c/fuzz/server_fuzz.c), for
# FUZZ_SECONDS; new inputs go to $(FUZZ_BUILD)/corpus. Not part of `test`.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_SOURCES = c/fuzz/server_fuzz.c c/server.c c/server_http.c c/auth.c c/loop.c

fuzz:
	mkdir -p $(FUZZ_BUILD)/corpus
	clang -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Ic $$(pkg-config --cflags lua5.4 libuv openssl) \
	  $(FUZZ_SOURCES) -o $(FUZZ_BUILD)/server_fuzz \
	  $$(pkg-config --libs lua5.4 libuv openssl) -lhttp_parser -lm
	$(FUZZ_BUILD)/server_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  -print_final_stats=1 $(FUZZ_BUILD)/corpus c/fuzz/corpus

format:
	clang-format -i c/*.c c/*.h c/test/*.c c/fuzz/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

.PHONY: all build asan test bench fuzz format clean
