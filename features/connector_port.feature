Feature: The connector satisfies the Connector port (REQ_0250)
  A connector from the factory is driven only through the ports.

  @REQ_0250 @TEST_2500
  Scenario: Name, health, lifecycle and channels as Results
    Given a broker
    And a connector "c"
    Then "c" has a non-empty name
    And "c" is Connecting
    When "c" starts
    Then "c" reaches Up
    And creating a writer and a reader on "c" returns Success
    And creating a writer with a routing that has only a filter on "c" returns a ConfigurationError
    When "c" closes
    Then "c" is Down
    And the channels of "c" refuse with ConnectorDown

  @REQ_0250 @TEST_2501
  Scenario: Channels created before start work once started
    Given a broker
    And a connector "c"
    And a reader "in" on "c" for topic "early/t" at QoS 1
    And a writer "out" on "c" to topic "early/t" at QoS 1
    When "out" sends the value "hello"
    And "c" starts
    Then "in" receives the value "hello"

  @REQ_0250 @TEST_2610
  Scenario: After a lost connection it gives up after exactly reconnect_attempt_ceiling + 1 failed attempts
    Given a broker
    And a started connector "c" with reconnect attempt ceiling 2
    When the broker goes away for "c"
    Then "c" reaches Down
    And "c" made exactly 3 connection attempts while the broker was away, and no more

  @REQ_0250 @TEST_2502
  Scenario: After a lost connection it goes Degraded, Connecting, Up and its readers' subscriptions are restored
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "lost/t" at QoS 1
    And a writer "out" on "pub" to topic "lost/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And the broker goes away for "sub"
    Then "sub" tries to reconnect
    When the broker comes back for "sub"
    Then "sub" reaches Up
    And since the broker went away "sub" went to Degraded, then Connecting, and last to Up
    When "in" is subscribed, probed through "out"
    And "out" sends the value "after" and it is delivered
    Then "in" receives the value "after"

  @REQ_0250 @TEST_2503
  Scenario: QoS 1 messages accepted while the broker is away are delivered after reconnecting
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "outage/t" at QoS 1
    And a writer "out" on "pub" to topic "outage/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And the broker goes away for "pub"
    Then "pub" tries to reconnect
    When "out" sends 3 values without waiting
    And the broker comes back for "pub"
    Then every delivery of "out" completes successfully
    And "in" receives the values 0 to 2, each at least once

  @REQ_0250 @TEST_2504
  Scenario: A reader's fileno() is readable exactly while a message or an error waits, usable with selectors
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And the broker refuses subscriptions to "fd/denied" from "sub"
    And a reader "in" on "sub" for topic "fd/t" at QoS 1
    And a writer "out" on "pub" to topic "fd/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And "in" is registered with a selector
    Then the selector finds "in" not readable
    When "out" sends 2 values and they are delivered
    Then the selector finds "in" readable
    And "in" receives one message
    And the selector finds "in" readable
    And "in" receives one message
    And the selector finds "in" not readable
    When a reader "denied" on "sub" for topic "fd/denied" at QoS 1
    And "denied" is registered with a selector
    Then the selector finds "denied" readable

  @REQ_0250 @TEST_2505
  Scenario: As a context manager it starts on entry and closes on exit
    Given a broker
    And a connector "c"
    And a reader "in" on "c" for topic "with/t" at QoS 1
    And a writer "out" on "c" to topic "with/t" at QoS 1
    When "c" is entered as a context manager
    Then "c" reaches Up
    When "in" is subscribed, probed through "out"
    And "out" sends the value "inside" and it is delivered
    Then "in" receives the value "inside"
    When the with block of "c" ends
    Then "c" is Down
    And the writer "out" and the reader "in" refuse with ConnectorDown

  @REQ_0250 @TEST_2506
  Scenario: A closed writer refuses to send while the connector's other writers carry on
    Given a broker
    And a started connector "c"
    And a reader "in" on "c" for topic "wclose/t" at QoS 1
    And a writer "gone" on "c" to topic "wclose/t" at QoS 1
    And a writer "kept" on "c" to topic "wclose/t" at QoS 1
    When "in" is subscribed, probed through "kept"
    And the writer "gone" is closed
    Then sending through "gone" is refused
    When "kept" sends the value "still here" and it is delivered
    Then "in" receives the value "still here"

  @REQ_0250 @TEST_2507
  Scenario: Iterating a reader yields its messages and ends once the reader is closed; a closed reader refuses while the others receive
    Given a broker
    And a started connector "c"
    And a reader "in" on "c" for topic "iter/t" at QoS 1
    And a reader "kept" on "c" for topic "iter/t" at QoS 1
    And a writer "out" on "c" to topic "iter/t" at QoS 1
    When every reader is subscribed, probed through "c"
    And "in" is iterated on a thread of its own
    And "out" sends 3 values and they are delivered
    Then the iteration of "in" yields the values 0 to 2
    And "kept" receives the values 0 to 2, each at least once
    When the reader "in" is closed
    Then the iteration of "in" ends promptly
    And the reader "in" refuses with ConnectorDown
    When "out" sends the value "after" and it is delivered
    Then "kept" receives the value "after"

  @REQ_0250 @TEST_2508
  Scenario: Iterating a reader ends once its connector is closed
    Given a broker
    And a started connector "c"
    And a reader "in" on "c" for topic "iterc/t" at QoS 1
    And a writer "out" on "c" to topic "iterc/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And "in" is iterated on a thread of its own
    And "out" sends 2 values and they are delivered
    Then the iteration of "in" yields the values 0 to 1
    When "c" closes
    Then the iteration of "in" ends promptly
    And the writer "out" and the reader "in" refuse with ConnectorDown

  @REQ_0250 @TEST_2509
  Scenario: A health subscription's next(timeout) waits for the next event; iterating one yields the events in order until it or its connector is closed
    Given a broker
    And a connector "c"
    And a health subscription "waiting" on "c"
    And a health subscription "kept" on "c"
    And a health subscription "closed early" on "c"
    Then next(0.3) of "waiting" gives no event
    When "waiting" waits for its next event on a thread of its own
    And "kept" is iterated on a thread of its own
    And "closed early" is iterated on a thread of its own
    And "c" starts
    Then "c" reaches Up
    And the wait of "waiting" gave the first event of "c"
    And the iteration of "closed early" yields every event of "c" so far
    When the health subscription "closed early" is closed
    Then the iteration of "closed early" ends promptly
    And next of "closed early" gives no event without waiting out its timeout
    When "c" closes
    Then the iteration of "kept" yields every event of "c" so far, the last one to Down
    And the iteration of "kept" ends promptly
