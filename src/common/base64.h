// Base64 (RFC 4648, with padding) for contexts shown to and read from users.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace monju {

std::string Base64Encode(std::string_view bytes);
// nullopt when the text is not valid padded base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace monju
