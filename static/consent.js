/* consentmw: progressive enhancement of the server-rendered banner (see issue 4). */
(function () { "use strict"; })();
