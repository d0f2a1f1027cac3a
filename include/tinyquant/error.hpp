// Exceptions thrown by the host toolkit. Every message says what failed, where (argument,
// tensor, index, file offset) and the offending value. The runtime (tinyquant::rt) never throws;
// its Status codes reach toolkit users as KernelError.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "tinyquant/rt/status.hpp"

namespace tinyquant {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An argument outside its documented range: bits, axis, group size, scale, sparsity, ...
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Shapes that do not agree, or a shape that does not fit the operation.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// Data that cannot be used: NaN/Inf values, empty calibration, zero range.
class DataError : public Error {
 public:
  using Error::Error;
};

// Bytes that do not form a valid file or record: truncated, corrupt, unsupported version.
class FormatError : public Error {
 public:
  using Error::Error;
};

// The operating system refused: cannot open, read, write or rename a file.
class IoError : public Error {
 public:
  using Error::Error;
};

// A runtime kernel returned a non-ok status.
class KernelError : public Error {
 public:
  KernelError(rt::Status status, const std::string& what) : Error(what), status_(status) {}
  rt::Status status() const noexcept { return status_; }

 private:
  rt::Status status_;
};

// text with every control byte (below 0x20, and 0x7F) written as \xNN: a name that came from a
// file (which may hold any byte: NUL, line breaks, terminal escapes) quoted whole and on one line
// in a message or a table. Other bytes are kept as they are.
std::string printable(std::string_view text);

}  // namespace tinyquant
