#pragma once

#include <stdexcept>

#include <workflow/export.hpp>

namespace workflow {

// The base of every error the SDK throws.
class WORKFLOW_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// RegisterHandler refused: an invalid queue name, a queue already taken, or a call made
// outside the daemon's call of the plugin's RegisterHandlers.
class WORKFLOW_API RegistrationError : public Error {
 public:
  using Error::Error;
};

// A message that cannot be read or sent: not a JSON object, no IncidentID, a missing field.
class WORKFLOW_API MessageError : public Error {
 public:
  using Error::Error;
};

// FlushMessages could not get every message confirmed by the broker.
class WORKFLOW_API PublishError : public Error {
 public:
  using Error::Error;
};

}  // namespace workflow
