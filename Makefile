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

format:
	clang-format -i c/*.c c/*.h c/test/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

.PHONY: all build asan test bench format clean
